#!/usr/bin/env bash
# lease.sh -- a mount killed with kill -9 loses its write sessions (and its
# opens at the CSS) once its lease runs out, even while other mounts of the
# same cluster stay connected; a mount that lives keeps them.
#
#  - the daemons run with a 2 s lease (lib.sh daemons_with);
#  - mount A (a second locusfs-mount of the cluster) opens a file the dev
#    mount M made and stages data in a write session, held open by dd;
#  - kill -9 of A: within a few leases the storage site aborts A's session
#    (its log says so, its status counts 0 sessions) although the dev
#    mount M stays connected the whole time; the staged data was not
#    committed; the CSS's open table no longer counts A's open;
#  - M opens, writes and commits the same file and reads it back.
# Every mount names a client id of its own in the handshake; before that,
# every mount was "site 0", so a live M kept a dead A's sessions for the
# 10-minute idle timeout.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init lease

LEASE_MS=2000
daemons_with --lease-ms "$LEASE_MS"

status_json() { "$LOCUSCTL" status --state "$STATE" --json 2>/dev/null; }
# The storage site's count of write sessions (its top-level "sessions").
ss_sessions() {
    status_json | grep -o '"storage":{[^}]*' | grep -o '"sessions":[0-9]*' | head -n 1 | cut -d: -f2
}
# The CSS's count of opens for writing.
css_writers() {
    status_json | grep -o '"opens":{[^}]*' | grep -o '"writers":[0-9]*' | head -n 1 | cut -d: -f2
}
sessions_are() { [ "$(ss_sessions)" = "$1" ]; }
writers_are() { [ "$(css_writers)" = "$1" ]; }

cluster_up
spid=$(pid_of storaged)
cpid=$(pid_of cssd)
grep -q -- "--lease-ms" "/proc/$spid/cmdline" || fail "storaged runs without the short lease"

# Mount A: a second mount of the same cluster.
MA=$WORK/mnt-a
mount_more "$MA"
apid=$MORE_PID
grep -q "client [0-9a-f]\{16\}" "$WORK/mount-mnt-a.log" || fail "mount A does not log its client id"

# M is busy (and so connected to the storage site) before and after.
echo before >"$MNT/m-file" || fail "write through M"

# A holds a write session with staged data on a file M made: dd keeps the
# one descriptor it opened (a shell would dup it, and every close of a dup
# is a FLUSH, which commits) and waits on a FIFO for more input.
: >"$MNT/held" || fail "create through M"
wait_for 10 "A to see the file" test -e "$MA/held"
mkfifo "$WORK/in" || fail "mkfifo"
exec 9<>"$WORK/in"
dd of="$MA/held" bs=64k conv=notrunc status=none <"$WORK/in" &
hpid=$!
track_pid "$hpid"
printf staged-by-a >&9
wait_for 30 "A to see its staged data" eval '[ "$(stat -c %s "$MA/held")" = 11 ]'
wait_for 30 "the storage site to count A's session" sessions_are 1
wait_for 30 "the CSS to count A's open for writing" writers_are 1

log "kill -9 mount A (pid $apid)"
t0=$(now_ms)
kill -KILL "$apid"
wait_for 30 "mount A to die" dead "$apid"
wait "$apid" 2>/dev/null

# M stays connected throughout: it keeps working while A's lease runs.
echo during >"$MNT/m-file" || fail "write through M while A's lease runs"
wait_for 20 "the storage site to abort the dead mount's session" sessions_are 0
wait_for 20 "the CSS to drop the dead mount's open" writers_are 0
log "A's session went $(( $(now_ms) - t0 )) ms after the kill (lease $LEASE_MS ms)"
grep -q "has had no connection for the lease.*aborting its 1 write session" "$STATE/log/storaged.log" ||
    fail "storaged's log does not say it aborted the dead mount's session"
[ "$(pid_of storaged)" = "$spid" ] && alive "$spid" || fail "storaged changed or died"
[ "$(pid_of cssd)" = "$cpid" ] && alive "$cpid" || fail "cssd changed or died"

# Nothing A staged was committed; M writes the file and commits.
[ "$(stat -c %s "$MNT/held")" = 0 ] || fail "the dead mount's staged data was committed: '$(cat "$MNT/held")'"
printf by-m >"$MNT/held" || fail "M cannot write the file the dead mount held"
[ "$(cat "$MNT/held")" = by-m ] || fail "M reads back '$(cat "$MNT/held")', expected 'by-m'"
[ "$(cat "$MNT/m-file")" = during ] || fail "M's own file is wrong"

# A live mount keeps its session across more than two leases of idleness.
exec 8>"$MNT/kept" || fail "open through M"
printf kept >&8 || fail "write through M"
wait_for 10 "M's session to show" sessions_are 1
t1=$(now_ms)
while [ $(( $(now_ms) - t1 )) -lt $(( 3 * LEASE_MS )) ]; do
    sessions_are 1 || fail "M's live session was dropped"
    sleep 0.2
done
exec 8>&-
[ "$(cat "$MNT/kept")" = kept ] || fail "M's kept file reads '$(cat "$MNT/kept")'"

exec 9>&-
pass
