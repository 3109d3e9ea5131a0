#!/usr/bin/env bash
# sigstop.sh -- a stop signal (Ctrl-Z: SIGTSTP) is not an interruption: a
# call through the mount that waits (here for a storage site that is down)
# goes on waiting and succeeds once the site is back, instead of failing
# with EINTR ("Interrupted system call").  The kernel sends FUSE an
# INTERRUPT for any signal, stop signals too; the mount honours it only
# when the caller has a signal pending that it takes (a handler, or a
# fatal one: docs/mount.md, "Interrupts").
#  1. One site; a file written; its storage daemon killed (-9); `cat` of
#     the file starts and waits in the mount's retries.
#  2. SIGTSTP to cat; the storage daemon started again (dev up); SIGCONT:
#     cat prints the file and exits 0.
#  3. A caller that catches SIGUSR1 is still interrupted (EINTR) by it,
#     while it waits for the site that is down (its handler runs at once,
#     not after the mount's timeout).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init sigstop

cluster_up
printf 'hello\n' >"$MNT/f" || fail "write through the mount"
printf 'again\n' >"$MNT/g" || fail "write through the mount"
run "$LOCUSCTL" sync --state "$STATE" --timeout 30

# in_fuse PID: PID waits in the kernel for an answer of the mount.
in_fuse() { grep -q fuse "/proc/$1/wchan" 2>/dev/null || grep -q request_wait "/proc/$1/wchan" 2>/dev/null; }
state_of() { awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null; }

# ---- 1, 2: Ctrl-Z while waiting --------------------------------------------
drop_caches
pid=$(pid_of storaged)
[ -n "$pid" ] || fail "no pid of the storage daemon"
kill -9 "$pid"
wait_for 30 "the storage daemon (pid $pid) to end" dead "$pid"
cat "$MNT/f" >"$WORK/out" 2>"$WORK/err" &
c=$!
track_pid "$c"
wait_for 30 "cat (pid $c) to wait in the mount" in_fuse "$c"
kill -TSTP "$c"
log "SIGTSTP sent to cat (pid $c), state $(state_of "$c")"
cluster_up
stopped_or_done() { [ "$(state_of "$c")" = T ] || dead "$c"; }
wait_for 60 "cat to stop or end" stopped_or_done
kill -CONT "$c" 2>/dev/null || true
rc=0
wait "$c" || rc=$?
[ "$rc" -eq 0 ] || fail "cat after Ctrl-Z failed (exit $rc): $(cat "$WORK/err")"
[ "$(cat "$WORK/out")" = hello ] || fail "cat after Ctrl-Z read '$(cat "$WORK/out")'"
log "part 1: cat stopped by SIGTSTP while it waited read the file once the site was back"

# ---- 3: a signal the caller takes still interrupts -------------------------
drop_caches
pid=$(pid_of storaged)
kill -9 "$pid"
wait_for 30 "the storage daemon (pid $pid) to end" dead "$pid"
python3 -c '
import os, signal, sys
class Interrupted(Exception):
    pass
def on_usr1(s, f):
    raise Interrupted()
signal.signal(signal.SIGUSR1, on_usr1)
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print("opened")
except Interrupted:
    print("interrupted")
' "$MNT/g" >"$WORK/out3" 2>&1 &
c=$!
track_pid "$c"
wait_for 30 "python (pid $c) to wait in the mount" in_fuse "$c"
kill -USR1 "$c"
wait_for 20 "python to end (interrupted by the signal it takes)" dead "$c"
wait "$c" || true
[ "$(cat "$WORK/out3")" = interrupted ] || fail "python's open was not interrupted: $(cat "$WORK/out3")"
log "part 3: a caller that takes SIGUSR1 is interrupted by it while it waits"
cluster_up
pass
