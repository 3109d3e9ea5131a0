#!/usr/bin/env bash
# repair.sh -- damaged pages repaired from another copy (issue #8,
# docs/replication.md "Repair of damaged pages"), two sites on 127.0.0.1-2:
#  1. A file of recognisable lines is written through site 1's mount, then
#     enough other data that the log moves on to newer segments (the
#     storage daemons run with 1 MiB segments: only damage in an older
#     segment is damage; in the newest it is a torn tail, cut off), and
#     `locusctl sync` says site 2 has it.
#  2. kill -9 of site 1's storaged; bytes of that file's data are
#     overwritten inside site 1's segment files; site 1 restarts, its
#     recovery marks the pages damaged, and it registers again (site 2
#     stays the primary: docs/replication.md "Failover").
#  3. `locusctl copies`, which reads every copy, makes site 1 meet the
#     damage; the file read through site 1's mount (caches dropped) is
#     right: site 1 fetched it from site 2 and rewrote it; its log names
#     the file, the pages and site 2; `locusctl copies` finds both copies
#     the same (vector and data), and a second restart of site 1 (recovery
#     again over the same damaged segment) still reads it right.
#  4. The same damage in the secondary's copy (site 2's log): `locusctl
#     copies`, which reads every copy, makes site 2 repair it from site 1.
#  5. Damage in a file g while its only other holder is down: the read fails
#     with EIO at once (no copy to repair from) and the log says so; once
#     site 2 is back (and the 10 s before a failed repair is tried again
#     have passed) the read repairs it and is right.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init repair

S1=$MNT/s1 S2=$MNT/s2
SEG=1048576

# Storage daemons with small segments (lib.sh), so damage lands in an older one.
small_segments "$SEG"

up() {
    local rc=0
    log "+ locusctl dev up $MNT --state $STATE --sites 2"
    timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" --sites 2 >&2 || rc=$?
    [ "$rc" -eq 0 ] || fail "locusctl dev up --sites 2 failed (exit $rc)"
    for k in 1 2; do
        wait_for 60 "the mount of site $k" is_mounted "$MNT/s$k"
        wait_for 60 "the mount of site $k to answer" stat "$MNT/s$k/."
    done
}
# primary_is K: the root file group's primary is site K.
primary_is() {
    "$LOCUSCTL" fg list --json --state "$STATE" 2>/dev/null |
        tr -d ' \n' | grep -q "\"fg\":1,[^}]*\"primary\":$1,"
}
LOG1=$STATE/site1/log/storaged.log
LOG2=$STATE/site2/log/storaged.log

# ---- 1. a file, then newer segments -----------------------------------------------
up
awk 'BEGIN { for (i = 0; i < 2048; i++)
                 printf "locus-repair-%06d-abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEFGHIJKL\n", i }' \
    >"$WORK/orig" || fail "awk"
cp "$WORK/orig" "$S1/f" || fail "write f through site 1"
sed 's/^locus-repair-/locus-second-/' "$WORK/orig" >"$WORK/orig-g" || fail "sed"
cp "$WORK/orig-g" "$S1/g" || fail "write g through site 1"
head -c $((4 * SEG)) /dev/urandom >"$WORK/filler" || fail "head"
cp "$WORK/filler" "$S1/filler" || fail "write filler through site 1"
run "$LOCUSCTL" sync --state "$STATE" --timeout 120

# ---- 2. damage in site 1's log ----------------------------------------------------
kill_ss 1
damage "$STATE/site1/data/fg-1" "locus-repair-001000-"
n0=$(grep -c "repaired from site 2" "$LOG1" 2>/dev/null) || n0=0
up                                      # restarts site 1's storaged
wait_for 60 "site 1 to be registered again" registered 1

# ---- 3. the read is answered from the repaired copy ------------------------------
wait_for 60 "locusctl copies /f to find both copies the same" "$LOCUSCTL" copies /f --state "$STATE"
drop_caches
cmp "$WORK/orig" "$S1/f" || fail "f read through site 1's mount is not what was written"
grep "repaired from site 2" "$LOG1" | tail -n 2 >&2
n1=$(grep -c "repaired from site 2" "$LOG1") || n1=0
[ "$n1" -gt "$n0" ] || fail "site 1's log does not say that it repaired f from site 2"
grep "damaged pages [0-9]*\.\.[0-9]* repaired from site 2" "$LOG1" | grep -q "fg 1 ino 0x" ||
    fail "the repair's log line does not name <fg, ino> and the pages"
run "$LOCUSCTL" copies /f --state "$STATE"
cmp "$WORK/orig" "$S2/f" || fail "f read through site 2's mount is not what was written"
cmp "$WORK/filler" "$S1/filler" || fail "filler is not what was written"
# The rewrite is in the log: after another crash and recovery (which
# meets the same damaged segment) f reads right with no new repair.
kill_ss 1
up
wait_for 60 "site 1 to be registered again" registered 1
drop_caches
cmp "$WORK/orig" "$S1/f" || fail "f is not right after site 1 restarted again"
run "$LOCUSCTL" copies /f --state "$STATE"    # reads site 1's copy itself, not a mount's cache
n2=$(grep -c "repaired from site 2" "$LOG1") || n2=0
[ "$n2" -eq "$n1" ] || fail "f was repaired again after a restart: the rewrite did not last"

# ---- 4. damage in the secondary's copy ---------------------------------------------
kill_ss 2
damage "$STATE/site2/data/fg-1" "locus-repair-001500-"
up
wait_for 60 "site 2 to be registered again" registered 2
wait_for 60 "locusctl copies /f to find both copies the same" "$LOCUSCTL" copies /f --state "$STATE"
grep -q "ino 0x[0-9a-f]*: damaged pages [0-9]*\.\.[0-9]* repaired from site 1" "$LOG2" ||
    fail "site 2's log does not say that it repaired f from site 1"
cmp "$WORK/orig" "$S2/f" || fail "f is not right after site 2's repair"

# ---- 5. no other copy reachable: EIO, then repaired once there is ------------------
kill_ss 2
kill_ss 1
damage "$STATE/site1/data/fg-1" "locus-second-001000-"
log "+ locusctl dev up $MNT --state $STATE --sites 2 (then site 2 is stopped again)"
up
kill_ss 2
wait_for 60 "site 1 to be the primary" primary_is 1
drop_caches
if out=$(cat "$S1/g" 2>&1 >/dev/null); then
    fail "g read with damaged pages and no other copy reachable, expected EIO"
fi
case "$out" in *"Input/output error"*) ;; *) fail "reading g: expected EIO, got: $out" ;; esac
grep -qE "cannot be repaired from another copy|no other site holds a copy" "$LOG1" ||
    fail "site 1's log does not say why g is not repaired"
up
wait_for 60 "site 2 to be registered again" registered 2
wait_for 60 "g to read right (repaired once site 2 is back)" cmp "$WORK/orig-g" "$S1/g"
grep -c "repaired from site 2" "$LOG1" | grep -qx 2 || fail "site 1's log does not name g's repair"
run "$LOCUSCTL" copies /g --state "$STATE"
grep -h -e "damaged" "$LOG1" "$LOG2" >&2
pass
