#!/usr/bin/env bash
# restart.sh -- a daemon restart does not need a remount.
#
# 1. SIGTERM locus-storaged while a reader loops over a file (open, read,
#    check, close) and while a mkdir and a read of a file not yet cached
#    are started with the daemon down: once `locusctl dev up` has restarted
#    it, all of them complete without an error, and the mount is the same
#    process and the same mount.
# 2. With the daemon down longer than a mount's timeout, a request fails
#    with ETIMEDOUT instead of hanging: a second mount of the same cluster
#    at $WORK/mnt2 with timeout=3 (locusfs-mount -o ...,timeout=3, readiness
#    through --ready-fd); once with storaged stopped (connections refused),
#    once with it frozen by SIGSTOP (connections accepted, never answered).
#    After each, the mount recovers by itself when the daemon is back.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init restart
find_helper ITOOL itool

cluster_up
mount_pid=$(pid_of mount)
mid=$(mount_id "$MNT") || fail "no mount id"
mkdir -p "$MNT/r" || fail "mkdir in the mount"
run "$ITOOL" mkfiles "$MNT/r" f 3 --min 1048576 --max 1048576

status=$WORK/reader.status
reads() { cut -d' ' -f1 "$status" 2>/dev/null || echo 0; }
reads_at_least() { [ -s "$status" ] && [ "$(reads)" -ge "$1" ]; }
"$ITOOL" reader "$MNT/r/f0000" "$status" >"$WORK/reader.out" 2>"$WORK/reader.log" &
rpid=$!
track_pid "$rpid"
wait_for 30 "the reader to get going" reads_at_least 5

# Problems are collected, so that one run reports all of them.
problems=()
problem() { log "PROBLEM: $*"; problems+=("$*"); }

spid=$(pid_of storaged)
log "SIGTERM storaged (pid $spid) under a reader"
kill -TERM "$spid"
wait_for 30 "storaged (pid $spid) to exit" dead "$spid"
# Requests that need the storage site, issued while it is down.
mkdir "$MNT/r/made-while-down" 2>"$WORK/mkdir.err" &
mkpid=$!
track_pid "$mkpid"
"$ITOOL" timed-read "$MNT/r/f0001" >"$WORK/timed.out" 2>&1 &
trpid=$!
track_pid "$trpid"
# The scenario is "the daemon is down for a while": keep it down for 2 s
# (this is the length of the outage, not a wait for an event).
sleep 2
alive "$mkpid" || log "note: mkdir finished while storaged was down: $(cat "$WORK/mkdir.err")"
before=$(reads)
t0=$(now_ms)
cluster_up
took=$(( $(now_ms) - t0 ))
log "locusctl dev up restarted storaged in $took ms"
[ "$took" -le 20000 ] ||
    problem "locusctl dev up took $took ms to restart storaged (the mount's timeout is 30 s)"
wait_for 90 "the reader to resume" reads_at_least $((before + 5))
wait_for 90 "the mkdir started while storaged was down to finish" dead "$mkpid"
wait "$mkpid" || problem "mkdir issued while storaged was down failed: $(cat "$WORK/mkdir.err")"
[ -d "$MNT/r/made-while-down" ] || problem "made-while-down is missing"
wait_for 90 "the read started while storaged was down to finish" dead "$trpid"
wait "$trpid" || problem "a read issued while storaged was down failed: $(cat "$WORK/timed.out")"
log "read while down: $(cat "$WORK/timed.out")"
kill -TERM "$rpid"
wait_for 30 "the reader to stop" dead "$rpid"
rrc=0
wait "$rpid" || rrc=$?
log "reader: $(cat "$WORK/reader.out")"
[ "$rrc" -eq 0 ] ||
    problem "the reader saw errors across the restart: $(sed -E 's/after [0-9]+ ms//' "$WORK/reader.log" | sort | uniq -c | sort -rn | head -n 3 | tr '\n' ';')"
[ "$(pid_of mount)" = "$mount_pid" ] && alive "$mount_pid" || fail "the mount process changed"
[ "$(mount_id "$MNT")" = "$mid" ] || fail "$MNT was remounted"

# ---- 2. ETIMEDOUT instead of a hang ----
mount_bin=${LOCUSFS_MOUNT:-${MESON_BUILD_ROOT:-}/fused/locusfs-mount}
[ -x "$mount_bin" ] || fail "locusfs-mount not found at $mount_bin (set LOCUSFS_MOUNT)"
MNT2=$WORK/mnt2
mkdir -p "$MNT2"
mkfifo "$WORK/ready2"
track_mount "$MNT2"
"$mount_bin" "$MNT2" -o "key=$STATE/cluster.key,css=127.0.0.1:$(port_of cssd),timeout=3" -f \
    --ready-fd 3 3>"$WORK/ready2" >"$WORK/mount2.log" 2>&1 &
m2pid=$!
track_pid "$m2pid"
line=
read -r -t 60 line <"$WORK/ready2" || true
case "$line" in
    READY*) log "second mount: $line" ;;
    *) fail "the second mount (timeout=3) did not get ready: '$line'; $(tail -n 20 "$WORK/mount2.log")" ;;
esac
wait_for 30 "the second mount to answer" stat "$MNT2/r/f0000"
run "$ITOOL" mkfiles "$MNT/r" g 2 --min 1000 --max 1000

# expect_timeout FILE WHAT: a read through the second mount gives ETIMEDOUT
# within a bounded time (timeout=3 s; allow up to 20 s, far below the
# default 30 s a mount that ignored the option would take).
expect_timeout() {
    local out rc=0 ms
    out=$(timeout -k 5 120 "$ITOOL" timed-read "$1") || rc=$?
    log "$2: $out"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        problem "$2: the read hung for 120 s"
        return
    fi
    case "$out" in
        result=ETIMEDOUT*) ;;
        *) problem "$2: wanted ETIMEDOUT after about 3 s, got: $out"; return ;;
    esac
    ms=${out##*ms=}
    [ "$ms" -ge 2000 ] && [ "$ms" -le 20000 ] ||
        problem "$2: ETIMEDOUT after $ms ms; the mount's timeout is 3 s"
}

spid=$(pid_of storaged)
kill -TERM "$spid"
wait_for 30 "storaged (pid $spid) to exit" dead "$spid"
expect_timeout "$MNT2/r/g0000" "storaged stopped"
cluster_up
wait_for 60 "the second mount to recover after the restart" "$ITOOL" timed-read "$MNT2/r/g0000"

spid=$(pid_of storaged)
log "SIGSTOP storaged (pid $spid)"
kill -STOP "$spid"
expect_timeout "$MNT2/r/g0001" "storaged frozen (SIGSTOP)"
kill -CONT "$spid"
wait_for 60 "the second mount to recover after SIGCONT" "$ITOOL" timed-read "$MNT2/r/g0001"
alive "$mount_pid" || fail "the main mount died"

fusermount3 -u "$MNT2" || fail "unmount $MNT2"
wait_for 30 "the second mount process to exit" dead "$m2pid"
if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do log "problem: $p"; done
    fail "${#problems[@]} problem(s), listed above"
fi
pass
