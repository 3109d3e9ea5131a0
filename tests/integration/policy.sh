#!/usr/bin/env bash
# policy.sh -- copies policies (issue #8, "Files and copies";
# docs/replication.md, "Copies policies"), on three sites with real
# daemons and mounts.  The root file group is held by sites 1, 2, 3; its
# home (lowest holder, keeps every file's data) is site 1.
#  1. Inheritance and override: a directory with user.locus.copies 1, a
#     directory below it (inherits by copy), one with copies 2 and sites 3,
#     an override inside the first with copies 3; garbage is refused.
#     Each file records its resolved placement (getxattr through another
#     site's mount); `locusctl copies --json` finds the right number of
#     data copies on the right sites, and the stores prove it: the bytes of
#     page data each site's storage daemon wrote (SS_STATUS through
#     `locusctl status --json` of each site) grow only where the data is
#     placed.  Every file reads back the same through every mount (a site
#     without the data reads from the primary).
#  2. replicas set: PATH N on one file, then -r on a directory; the data
#     copies follow (copies --json), a rerun changes nothing.
#  3. The no-data guard: site 1's storage daemon stopped; site 2 is the
#     primary and keeps no data of a file placed only on site 1: reading it
#     through site 2's mount fails (an error, never zeros); a file placed on
#     1 and 3 is read from site 3; a write of it at site 2 first fetches its
#     data from site 3 (site 2 then keeps an extra copy); a write of the
#     file placed on site 1 alone fails and changes nothing, a file created
#     there in a 1-copy directory keeps its data at site 2 too, a chmod
#     there of a file placed on 1 and 3 reaches them; site 1
#     back, everything reads whole again, the new files on every site.
#  4. Repair never from a copy without the data: pages of a file placed on
#     site 1 alone are damaged in site 1's log (the storage daemons run
#     with 1 MiB segments, as in repair.sh); sites 2 and 3 have its vector
#     but no data, so a read fails with EIO and site 1's log says the
#     repair found no copy: never the zeros of a copy without pages.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init policy

S1=$MNT/s1 S2=$MNT/s2 S3=$MNT/s3
SEG=1048576

# Storage daemons with small segments (lib.sh), so damage lands in an older one.
small_segments "$SEG"

getx() { "$ITOOL" getxattr "$1" "$2" 2>/dev/null || true; }
# expect_x PATH NAME VALUE: the xattr as seen through site 2's mount.
expect_x() {
    local v
    v=$(getx "$1" "$2")
    [ "$v" = "$3" ] || fail "$1: $2 is '$v', expected '$3'"
}
# data_sites PATH: the sites with the data, from `locusctl copies --json`
# (which also checks that the data copies match the file's copies).
data_sites() {
    local out rc=0
    out=$("$LOCUSCTL" copies "$1" --json --state "$STATE" 2>&1) || rc=$?
    [ "$rc" -eq 0 ] || fail "copies $1 (exit $rc): $out"
    printf '%s\n' "$out" | sed -n 's/.*"data_sites":\[\([0-9,]*\)\].*/\1/p'
}
# data_written K: bytes site K's store takes on disk (its containers'
# segment files and indexes; segments grow as they are written).
data_written() {
    du -s --block-size=1 "$STATE/site$1/data" | awk '{ print $1 }'
}

sites_up 3
run "$LOCUSCTL" sync --state "$STATE" --timeout 60

# ---- 1. inheritance, override ------------------------------------------------------
mkdir "$S1/one" "$S1/two" "$S1/three" || fail "mkdir"
"$ITOOL" setxattr "$S1/one" user.locus.copies abc 2>/dev/null && fail "copies 'abc' accepted"
"$ITOOL" setxattr "$S1/one" user.locus.copies 0 2>/dev/null && fail "copies '0' accepted"
"$ITOOL" setxattr "$S1/two" user.locus.sites "3,x" 2>/dev/null && fail "sites '3,x' accepted"
run "$ITOOL" setxattr "$S1/one" user.locus.copies 1
run "$ITOOL" setxattr "$S1/two" user.locus.copies 2
run "$ITOOL" setxattr "$S1/two" user.locus.sites 3
run "$ITOOL" setxattr "$S1/three" user.locus.sites 3            # sites alone: N = 2 (home + 3)
mkdir -p "$S1/one/sub/over" || fail "mkdir one/sub/over"
run "$ITOOL" setxattr "$S1/one/sub/over" user.locus.copies 3
for k in 1 2 3; do w0[$k]=$(data_written "$k"); done
for i in $(seq 1 2000); do printf 'policy-damage-line-%06d\n' "$i"; done >"$WORK/dmg"
cp "$WORK/dmg" "$S1/one/dmg" || fail "write one/dmg"                    # placed on site 1 alone
head -c $((6 << 20)) /dev/urandom >"$WORK/a" || fail "random data"
head -c $((4 << 20)) /dev/urandom >"$WORK/b" || fail "random data"
head -c $((1 << 20)) /dev/urandom >"$WORK/c" || fail "random data"
cp "$WORK/a" "$S1/one/sub/a" || fail "write one/sub/a"
cp "$WORK/b" "$S1/two/b" || fail "write two/b"
cp "$WORK/c" "$S1/one/sub/over/c" || fail "write one/sub/over/c"
cp "$WORK/c" "$S1/plain" || fail "write plain"
cp "$WORK/c" "$S1/one/sub/unread" || fail "write one/sub/unread"       # never read before part 3
cp "$WORK/c" "$S1/three/k" || fail "write three/k"                    # never read before part 3
printf 'mode change\n' >"$S1/three/m" || fail "write three/m"
run "$LOCUSCTL" sync --state "$STATE" --timeout 120

expect_x "$S2/one/sub" user.locus.copies 1
expect_x "$S2/one/sub/over" user.locus.copies 3
expect_x "$S2/one/sub/a" user.locus.copies 1
expect_x "$S2/one/sub/a" user.locus.sites 1
expect_x "$S2/two/b" user.locus.copies 2
expect_x "$S2/two/b" user.locus.sites 1,3
expect_x "$S2/one/sub/over/c" user.locus.sites 1,2,3
expect_x "$S2/plain" user.locus.sites ""
expect_x "$S2/three/k" user.locus.sites 1,3
[ "$(data_sites /one/sub/a)" = 1 ] || fail "/one/sub/a: data not on site 1 alone"
[ "$(data_sites /two/b)" = 1,3 ] || fail "/two/b: data not on sites 1 and 3"
[ "$(data_sites /one/sub/over/c)" = 1,2,3 ] || fail "/one/sub/over/c: data not on every site"
[ "$(data_sites /plain)" = 1,2,3 ] || fail "/plain: data not on every site"
for k in 1 2 3; do
    w1[$k]=$(data_written "$k")
    log "site $k's store grew by $(( w1[k] - w0[k] )) bytes"
done
# a (6 MiB) only at 1, b (4 MiB) at 1 and 3, c, plain (1 MiB each) everywhere,
# unread (1 MiB) at 1, k (1 MiB) at 1 and 3.
[ $(( w1[1] - w0[1] )) -ge $((14 << 20)) ] || fail "site 1 did not store every file's data"
[ $(( w1[2] - w0[2] )) -lt $((3 << 20)) ] || fail "site 2 stored data placed elsewhere"
[ $(( w1[3] - w0[3] )) -ge $((7 << 20)) ] && [ $(( w1[3] - w0[3] )) -lt $((8 << 20)) ] ||
    fail "site 3 did not store exactly the data placed on it"
for k in 1 2 3; do
    cmp "$WORK/a" "$MNT/s$k/one/sub/a" || fail "one/sub/a reads wrong through site $k"
    cmp "$WORK/b" "$MNT/s$k/two/b" || fail "two/b reads wrong through site $k"
    cmp "$WORK/c" "$MNT/s$k/one/sub/over/c" || fail "one/sub/over/c reads wrong through site $k"
done
out=$("$LOCUSCTL" copies / --tree --state "$STATE" 2>&1) || fail "copies --tree: $out"

# ---- 2. replicas set -----------------------------------------------------------------
rc=0; "$LOCUSCTL" replicas set /plain 2 --sites x --state "$STATE" 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "replicas set --sites x: exit $rc, expected 2"
run "$LOCUSCTL" replicas set /plain 1 --state "$STATE" --timeout 120
[ "$(data_sites /plain)" = 1 ] || fail "/plain: data not on site 1 alone after replicas set 1"
expect_x "$S2/plain" user.locus.copies 1
run "$LOCUSCTL" replicas set /two 3 -r --state "$STATE" --timeout 120
[ "$(data_sites /two/b)" = 1,2,3 ] || fail "/two/b: data not on every site after replicas set -r 3"
expect_x "$S3/two" user.locus.copies 3
run "$LOCUSCTL" replicas set /one/sub/over 2 -r --sites 2 --state "$STATE" --timeout 120
[ "$(data_sites /one/sub/over/c)" = 1,2 ] || fail "/one/sub/over/c: data not on sites 1 and 2"
expect_x "$S3/one/sub/over" user.locus.sites 2
# interrupted while it waits, then rerun: a clean result
"$LOCUSCTL" replicas set /two 1 -r --state "$STATE" --timeout 120 >"$WORK/set.out" 2>&1 &
cpid=$!
track_pid "$cpid"
wait_for 60 "replicas set to set the policy" grep -q "policy set" "$WORK/set.out"
kill -9 "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
run "$LOCUSCTL" replicas set /two 1 -r --state "$STATE" --timeout 120
[ "$(data_sites /two/b)" = 1 ] || fail "/two/b: data not on site 1 alone after the rerun"
for k in 1 2 3; do
    cmp "$WORK/b" "$MNT/s$k/two/b" || fail "two/b reads wrong through site $k after replicas set"
    cmp "$WORK/c" "$MNT/s$k/one/sub/over/c" || fail "one/sub/over/c reads wrong through site $k"
done

# ---- 3. no data at the interim primary ---------------------------------------------
kill_ss 1
wait_for 60 "site 2 to be the primary of the root group" root_primary_is 2
rc=0
timeout 120 cat "$S2/one/sub/unread" >"$WORK/u.read" 2>"$WORK/u.err" || rc=$?
log "reading one/sub/unread through site 2 without site 1: exit $rc: $(cat "$WORK/u.err")"
[ "$rc" -ne 0 ] || fail "a file whose only data copy is down was read through site 2"
if [ -s "$WORK/u.read" ]; then
    cmp -n "$(stat -c %s "$WORK/u.read")" "$WORK/c" "$WORK/u.read" ||
        fail "site 2 served bytes that are not the file's (zeros?)"
fi
grep -q "has no data at site 2" "$STATE/site2/log/storaged.log" ||
    fail "site 2's storage daemon did not log why it refused"
# placed on 1 and 3: the CSS sends the read to site 3
cmp "$WORK/c" "$S2/three/k" || fail "three/k (data on sites 1 and 3) does not read through site 2 without site 1"
# a write at the interim primary first fetches the data from site 3
cp "$WORK/c" "$WORK/cx" && printf x >>"$WORK/cx" || fail "cp"
timeout 120 sh -c "printf x >>'$S2/three/k'" || fail "appending to three/k through site 2 without site 1"
cmp "$WORK/cx" "$S2/three/k" || fail "three/k reads wrong through site 2 after the append"
grep -q "its data (256 pages) fetched from site 3" "$STATE/site2/log/storaged.log" ||
    fail "site 2 did not log where it fetched the data of three/k from"
# a chmod at the interim primary (no data of three/m) fetches the data
# first, so that sites 1 and 3 can pull the new version
chmod 600 "$S2/three/m" || fail "chmod three/m through site 2 without site 1"
# a file created at the interim primary in a 1-copy directory keeps its
# data there too (the home is down)
cp "$WORK/c" "$S2/one/new" || fail "creating one/new through site 2 without site 1"
expect_x "$S2/one/new" user.locus.sites 1,2
# with no copy of the data reachable, the write fails and changes nothing
rc=0
timeout 120 sh -c "printf x >>'$S2/one/sub/unread'" 2>"$WORK/w.err" || rc=$?
log "appending to one/sub/unread through site 2 without site 1: exit $rc: $(cat "$WORK/w.err")"
[ "$rc" -ne 0 ] || fail "a write of a file whose only data copy is down succeeded"
grep -q "its data cannot be fetched from a copy that keeps it" "$STATE/site2/log/storaged.log" ||
    fail "site 2 did not log why it refused the write"
sites_up 3
# the primary is sticky (docs/replication.md "Failover"): site 2 keeps the
# role while it is up; site 1 comes back as a holder
wait_for 60 "site 1 to be registered again" registered 1
run "$LOCUSCTL" sync --state "$STATE" --timeout 120
cmp "$WORK/c" "$S2/one/sub/unread" || fail "one/sub/unread reads wrong through site 2 after site 1 returned"
for k in 1 2 3; do
    cmp "$WORK/cx" "$MNT/s$k/three/k" || fail "three/k reads wrong through site $k after site 1 returned"
done
expect_x "$S1/three/k" user.locus.sites 1,2,3
cmp "$WORK/c" "$S1/one/new" || fail "one/new reads wrong through site 1"
"$LOCUSCTL" copies /three/m --state "$STATE" >&2 || fail "the copies of /three/m differ after the chmod"
for k in 1 3; do
    [ "$(stat -c %a "$MNT/s$k/three/m")" = 600 ] || fail "three/m: the chmod is not seen through site $k"
done
[ "$(data_sites /one/new)" = 1,2 ] || fail "/one/new: the data is not on sites 1 and 2"
[ "$(data_sites /three/k)" = 1,2,3 ] || fail "/three/k: the data is not on sites 1 and 3 and the extra copy at 2"

# ---- 4. no repair from a copy without the data ----------------------------------------
expect_x "$S3/one/dmg" user.locus.sites 1
kill_ss 1
damage "$STATE/site1/data/fg-1" "policy-damage-line-001000"
sites_up 3
wait_for 60 "site 1 to be registered again" registered 1
rc=0
timeout 120 cat "$S3/one/dmg" >"$WORK/dmg.read" 2>"$WORK/dmg.err" || rc=$?
log "reading the damaged one/dmg through site 3: exit $rc: $(cat "$WORK/dmg.err")"
[ "$rc" -ne 0 ] || fail "a damaged file with no other data copy was read (from a copy without pages?)"
if [ -s "$WORK/dmg.read" ]; then
    cmp -n "$(stat -c %s "$WORK/dmg.read")" "$WORK/dmg" "$WORK/dmg.read" || fail "one/dmg read wrong bytes"
fi
grep -q "keeps no data of it" "$STATE/site1/log/storaged.log" ||
    fail "site 1's repair did not say why sites 2 and 3 could not serve"
pass
