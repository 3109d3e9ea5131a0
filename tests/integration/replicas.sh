#!/usr/bin/env bash
# replicas.sh -- locusctl replicas add|remove (issue #8, "Failures";
# docs/replication.md, "Adding and removing copies"), on three sites with
# real daemons and mounts.
#  1. A file group held by site 1 only, populated with a few hundred files
#     (a tar of a directory); `replicas add /g 2`: two same copies.
#  2. `replicas add /g 3` interrupted: site 3's storaged killed (-9) as soon
#     as its container appears, then locusctl killed (-9) while it waits.
#     Site 3 is then listed as being added, never as a holder; after a
#     restart the rerun finishes: three same copies.
#  3. `replicas remove /g 1`: the group stays fully readable through every
#     mount, site 1's container folder is gone; a rerun changes nothing.
#  4. with sync_copies 2, removing one of the two holders is refused (the
#     message says why, nothing changes); with sync_copies 1 it goes
#     through, down to one holder; removing the last one is refused.
#  5. the removed site 1 is added again (the live primary keeps its role:
#     docs/replication.md "Failover"); what is
#     written then reaches site 3 (whose watermark of site 1's old copy is
#     past the new copy's stream); with site 1 alone, creates there take
#     numbers its old container never gave; site 3 added again.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init replicas

S1=$MNT/s1 S2=$MNT/s2 S3=$MNT/s3

up() { sites_up 3; }
# same_copies PATH N: `copies --tree` finds N copies of PATH, all the same.
same_copies() {
    local out rc=0
    out=$("$LOCUSCTL" copies "$1" --tree --state "$STATE" 2>&1) || rc=$?
    printf '%s\n' "$out" | grep -v "^  " | tail -n 30 >&2
    [ "$rc" -eq 0 ] || fail "the copies of $1 differ (see above)"
    [ "$(printf '%s\n' "$out" | grep -c ' files under ')" -eq "$2" ] || fail "not $2 copies of $1"
}
holders() { "$LOCUSCTL" fg list --state "$STATE" 2>&1; }
# readable K: every file of the source tree reads the same through site K's mount.
readable() { diff -r "$WORK/src" "$MNT/s$1/g/src" >&2 || fail "site $1's mount does not read /g as written"; }

up
run "$LOCUSCTL" fg create g --mount /g --copies 1 --sites 1 --state "$STATE"
FG=$("$LOCUSCTL" fg list --json --state "$STATE" | tr '{' '\n' | awk '/"name":"g"/ {
        match($0, /"fg":[0-9]+/); print substr($0, RSTART + 5, RLENGTH - 5) }')
[ -n "$FG" ] || fail "no id for file group g"
[ -d "$STATE/site1/data/fg-$FG" ] && [ ! -d "$STATE/site2/data/fg-$FG" ] || fail "g is not on site 1 only"

# ---- 1. a populated group gets a second copy ------------------------------------
mkdir -p "$WORK/src"
for d in $(seq 0 9); do
    mkdir "$WORK/src/d$d"
    for f in $(seq 0 39); do head -c $(( (d * 40 + f) * 97 % 20000 + 1 )) /dev/urandom >"$WORK/src/d$d/f$f"; done
done
ln -s d0/f0 "$WORK/src/link"
tar -C "$WORK" -cf "$WORK/src.tar" src || fail "tar"
tar -C "$S1/g" -xf "$WORK/src.tar" || fail "untar through site 1"
run "$LOCUSCTL" replicas add /g 2 --state "$STATE" --timeout 120
[ -d "$STATE/site2/data/fg-$FG" ] || fail "no container of g at site 2"
same_copies /g 2

# ---- 2. an add interrupted twice, then rerun ----------------------------------------
"$LOCUSCTL" replicas add /g 3 --state "$STATE" --timeout 300 >"$WORK/add3.out" 2>&1 &
cpid=$!
track_pid "$cpid"
wait_for 60 "site 3's container of g" test -d "$STATE/site3/data/fg-$FG"
pid3=$(site_pid 3 storaged) || fail "no pid of site 3's storaged"
log "+ kill -9 site 3's storaged ($pid3) during the pull"
kill -9 "$pid3"
wait_for 30 "site 3's storaged to be gone" dead "$pid3"
alive "$cpid" || fail "locusctl did not wait for the new copy: $(cat "$WORK/add3.out")"
log "+ kill -9 locusctl replicas add ($cpid) while it waits"
kill -9 "$cpid"
wait "$cpid" 2>/dev/null
out=$(holders)
printf '%s\n' "$out" >&2
printf '%s\n' "$out" | grep -q "3(down)(adding)\|3(adding)" || fail "site 3 is not listed as being added: $out"
up                                      # site 3's storaged again, with its half copy
out=$(holders)
printf '%s\n' "$out" | grep -q "3(adding)" || fail "a restarted half copy became a holder: $out"
run "$LOCUSCTL" replicas add /g 3 --state "$STATE" --timeout 120
out=$(holders)
printf '%s\n' "$out" | grep -q "adding" && fail "site 3 still being added after the rerun: $out"
same_copies /g 3
run "$LOCUSCTL" replicas add "$FG" 3 --state "$STATE" --timeout 60      # nothing left to do

# ---- 3. remove the copy of the primary --------------------------------------------
run "$LOCUSCTL" replicas remove /g 1 --state "$STATE"
[ ! -e "$STATE/site1/data/fg-$FG" ] || fail "site 1's container folder of g is still there"
ls -a "$STATE/site1/data" | grep -q "fg-$FG" && fail "leftovers of g's container at site 1"
for k in 1 2 3; do readable "$k"; done
same_copies /g 2
run "$LOCUSCTL" replicas remove g 1 --state "$STATE"                 # a rerun: nothing left to do

# ---- 4. never below sync_copies, never the last copy ----------------------------------
run "$LOCUSCTL" fg set g --sync-copies 2 --state "$STATE"
rc=0
out=$("$LOCUSCTL" replicas remove /g 2 --state "$STATE" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "removing a copy below sync_copies 2 was not refused (exit $rc): $out"
case "$out" in *"sync_copies 2"*"--sync-copies 1"*) ;; *) fail "the refusal does not say why: $out" ;; esac
log "refused as it should: $out"
[ -d "$STATE/site2/data/fg-$FG" ] || fail "site 2's container was dropped although the removal was refused"
same_copies /g 2
run "$LOCUSCTL" fg set g --sync-copies 1 --state "$STATE"
run "$LOCUSCTL" replicas remove /g/src/d3 2 --state "$STATE"
[ ! -e "$STATE/site2/data/fg-$FG" ] || fail "site 2's container folder of g is still there"
rc=0
out=$("$LOCUSCTL" replicas remove /g 3 --state "$STATE" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "removing the last copy was not refused (exit $rc): $out"
case "$out" in *"last"*) ;; *) fail "the refusal does not say why: $out" ;; esac
[ -d "$STATE/site3/data/fg-$FG" ] || fail "the last copy's container is gone"
for k in 1 2 3; do readable "$k"; done

# ---- 5. a removed site comes back -----------------------------------------------------
# Its new container's change stream starts again from 1, below what site 3
# had consumed of the old one: site 3 must pull it from the start.
run "$LOCUSCTL" replicas add /g 1 --state "$STATE" --timeout 120
cp -r "$WORK/src/d1" "$S2/g/src/again" || fail "write through site 2 after site 1 came back"
cp -r "$WORK/src/d1" "$WORK/src/again"
run "$LOCUSCTL" sync --state "$STATE" --timeout 120
same_copies /g 2
for k in 1 2 3; do readable "$k"; done
# Site 1 alone: every create is made there, from the pool of its new
# container, which must not hand out the numbers its old one gave.
run "$LOCUSCTL" replicas remove /g 3 --state "$STATE"
cp -r "$WORK/src/d2" "$S2/g/src/more" || fail "write through site 2 with site 1 alone"
cp -r "$WORK/src/d2" "$WORK/src/more"
for k in 1 2 3; do readable "$k"; done
run "$LOCUSCTL" replicas add /g 3 --state "$STATE" --timeout 120
run "$LOCUSCTL" sync --state "$STATE" --timeout 120
same_copies /g 2
pass
