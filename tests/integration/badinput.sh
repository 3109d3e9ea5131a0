#!/usr/bin/env bash
# badinput.sh -- garbage, truncated frames, oversized frames and frames
# without the key (badinput.c) against both daemons' ports (from
# $STATE/run/*.port, 127.0.0.1 only); meanwhile and afterwards the real
# mount must keep working, and the daemons must be the same processes.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init badinput
find_helper BADINPUT badinput
find_helper ITOOL itool

cluster_up
spid=$(pid_of storaged)
cpid=$(pid_of cssd)
mkdir -p "$MNT/b" || fail "mkdir in the mount"
run "$ITOOL" mkfiles "$MNT/b" before 10 --min 1 --max 300000

# A reader keeps the real mount busy the whole time.
"$ITOOL" reader "$MNT/b/before0003" "$WORK/reader.status" >"$WORK/reader.out" 2>"$WORK/reader.log" &
rpid=$!
track_pid "$rpid"
reads_at_least() { [ -s "$WORK/reader.status" ] && [ "$(cut -d' ' -f1 "$WORK/reader.status")" -ge "$1" ]; }
wait_for 30 "the reader to get going" reads_at_least 3

# Both daemons at once (each run waits ~10 s for a silent connection to be
# dropped by the handshake timeout).
bpids=()
for d in storaged cssd; do
    port=$(port_of $d)
    [ -n "$port" ] || fail "no port in $STATE/run/$d.port"
    log "badinput against $d on 127.0.0.1:$port"
    timeout -k 5 240 "$BADINPUT" --port "$port" --key "$STATE/cluster.key" --kind "$d" \
        >"$WORK/badinput-$d.tap" 2>&1 &
    bpids+=($!)
    track_pid $!
done
rc=0
for i in 0 1; do
    wait "${bpids[$i]}" || rc=$?
done
cat "$WORK"/badinput-*.tap
[ "$rc" -eq 0 ] || fail "badinput reported failures (exit $rc; see the TAP above)"

[ "$(pid_of storaged)" = "$spid" ] && alive "$spid" || fail "storaged died or restarted"
[ "$(pid_of cssd)" = "$cpid" ] && alive "$cpid" || fail "cssd died or restarted"

n=$(cut -d' ' -f1 "$WORK/reader.status")
wait_for 30 "the reader to keep reading" reads_at_least $((n + 3))
kill -TERM "$rpid"
wait_for 30 "the reader to stop" dead "$rpid"
rrc=0
wait "$rpid" || rrc=$?
cat "$WORK/reader.out" >&2
[ "$rrc" -eq 0 ] || fail "the reader saw errors on the real mount: $(head -n 5 "$WORK/reader.log")"

# The mount still writes, commits and reads.
run "$ITOOL" verify "$MNT/b" before 10 --min 1 --max 300000
run "$ITOOL" mkfiles "$MNT/b" after 10 --min 1 --max 300000
drop_caches
run "$ITOOL" verify "$MNT/b" after 10 --min 1 --max 300000
pass
