#!/usr/bin/env bash
# cssbusy.sh -- the mount retries a CSS that answers "busy" (EAGAIN: too
# many requests wait for storage sites) until its timeout, instead of
# failing the user's open(2) with EAGAIN.
#
# The CSS asks storage sites about an open only when it must compare
# copies: a read-only open from a mount on a site that holds a copy other
# than the primary's (css/css.c open_needs_copies; the other opens are
# answered from its table).  So: two sites, site 1 the primary.
#  - site 1's storage site is stopped (SIGSTOP), so every such CSS_OPEN
#    waits for it; cssflood, naming site 2, fills the CSS's request table
#    (CSS_MAX_JOBS, 1,024) with such opens;
#  - the test opens a file through site 2's mount (through /proc, so no
#    lookup goes to the stopped storage site first): the CSS refuses its
#    CSS_OPEN as busy (its log says so);
#  - the storage site continues: the table drains, the mount's next try is
#    served, and the open succeeds and reads the file.
# Before the mount retried, the open failed at once with EAGAIN.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init cssbusy
find_helper CSSFLOOD cssflood

sites_up 2
printf 'hello\n' >"$MNT/s1/f" || fail "cannot write $MNT/s1/f"
run "$LOCUSCTL" sync --state "$STATE" --timeout 60
exec 7<"$MNT/s2/f" || fail "cannot open $MNT/s2/f"
CSSPORT=$(site_port 1 cssd)
CSSLOG=$STATE/site1/log/cssd.log

spid=$(site_pid 1 storaged)
[ -n "$spid" ] || fail "no pid of site 1's storaged"
stat "$MNT/s2/f" >/dev/null || fail "stat $MNT/s2/f"   # fresh attributes for the open below
log "SIGSTOP site 1's storaged (pid $spid)"
kill -STOP "$spid"
# Opens of the root (<1,1>) fill the table; more than it holds, so that
# whatever else waits there (e.g. the keeper's requests) cannot leave room.
"$CSSFLOOD" --port "$CSSPORT" --key "$STATE/cluster.key" --count 1100 --until 1024 --site 2 >&2 ||
    fail "cssflood could not fill the CSS's request table"

# The open: the CSS refuses it as busy at least once.  It must start at
# once: the kernel asks the (stopped) storage site for the file's
# attributes again once they are a second old (default_permissions), and
# that would hold the open before it reaches the CSS.  The flood's jobs
# end when the CSS's calls to the stopped site time out, so the table is
# refilled meanwhile until the refusal is seen.
( cat "/proc/$$/fd/7" >"$WORK/out" 2>"$WORK/err"; echo $? >"$WORK/rc" ) &
( while :; do "$CSSFLOOD" --port "$CSSPORT" --key "$STATE/cluster.key" --count 1100 --until 1024 --site 2 \
      >/dev/null 2>&1 || sleep 0.1; done ) &
fpid=$!
track_pid "$fpid"
refused() { grep "refused: .* wait for storage sites" "$CSSLOG" | grep -v "open <1,1> " | grep -q .; }
wait_for 60 "the CSS to refuse the mount's open as busy" refused
kill "$fpid" 2>/dev/null
wait "$fpid" 2>/dev/null
log "the CSS refused the open: $(grep "refused: .* wait for storage sites" "$CSSLOG" |
    grep -v "open <1,1> " | head -n 1)"
[ ! -e "$WORK/rc" ] || fail "the open ended while the CSS was busy: $(cat "$WORK/err")"

log "SIGCONT site 1's storaged"
kill -CONT "$spid"
wait_for 60 "the open to end" test -s "$WORK/rc"
[ "$(cat "$WORK/rc")" = 0 ] || fail "the open failed while the CSS was busy: $(cat "$WORK/err")"
[ "$(cat "$WORK/out")" = hello ] || fail "read '$(cat "$WORK/out")' after the busy open, expected 'hello'"
exec 7<&-
pass
