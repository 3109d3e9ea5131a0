#!/usr/bin/env bash
# synccopies.sh -- sync_copies (issue #8, docs/replication.md
# "sync_copies"): fsync returns once the commit is durable on that many
# copies.  Three sites, real daemons, real mounts.
#  0. fg create --sync-copies above the copies, and fg set above the
#     holders, are refused; fg set changes it (the primary logs it).
#  1. A file group on all three sites with sync_copies 2; a 32 MiB file
#     written through site 1's mount (site 1 is the primary) and fsynced;
#     as soon as fsync returns, kill -9 of site 1's storage daemon and its
#     data directory deleted (its disk died).  The file is then read,
#     whole and equal, through site 2's mount (the new primary, or the
#     copy it pulls from site 3).
#  2. With site 1 still gone, site 3's storage daemon killed too: only one
#     holder is left, so an fsync through site 2's mount fails (EIO, after
#     the storage site's wait), and the storage site's log says why; the
#     data written stays readable (committed on one copy).
# SYNCCOPIES_TEST_SC=1 runs part 1 with --sync-copies 1 (the default),
# which must fail: that is how the test was checked against its purpose.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init synccopies

SC=${SYNCCOPIES_TEST_SC:-2}
S1=$MNT/s1 S2=$MNT/s2

log "+ locusctl dev up $MNT --state $STATE --sites 3"
rc=0
timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" --sites 3 >&2 || rc=$?
[ "$rc" -eq 0 ] || fail "locusctl dev up --sites 3 failed (exit $rc)"
for k in 1 2 3; do
    wait_for 60 "the mount of site $k" is_mounted "$MNT/s$k"
    wait_for 60 "the mount of site $k to answer" stat "$MNT/s$k/."
done
# Created with 1, then set to $SC (both ways of setting it).
run "$LOCUSCTL" fg create safe --mount /safe --copies 3 --sync-copies 1 --state "$STATE"
out=$("$LOCUSCTL" fg create bad --mount /bad --copies 2 --sync-copies 3 --state "$STATE" 2>&1) &&
    fail "fg create with --sync-copies 3 > --copies 2 succeeded"
log "refused as it should: $out"
out=$("$LOCUSCTL" fg set safe --sync-copies 4 --state "$STATE" 2>&1) &&
    fail "fg set --sync-copies 4 on a group of 3 copies succeeded"
case "$out" in *"has 3 copies"*) ;; *) fail "fg set --sync-copies 4: the message does not say why: $out" ;; esac
run "$LOCUSCTL" fg set safe --sync-copies "$SC" --state "$STATE"
wait_for 30 "/safe through site 1's mount" stat "$S1/safe/."
if [ "$SC" -ge 2 ]; then
    # The primary applies it with its next mount table (a ready signal in its log).
    wait_for 30 "site 1's storaged to apply sync_copies $SC" \
        grep -q "fg 2: sync_copies $SC" "$STATE/site1/log/storaged.log"
fi
run "$LOCUSCTL" sync --state "$STATE" --timeout 60

# ---- 1. fsync returned: the data survives the primary's disk --------------
head -c $((32 << 20)) /dev/urandom >"$WORK/data"
dd if="$WORK/data" of="$S1/safe/f" bs=1M conv=fsync status=none || fail "write + fsync through site 1"
pid=$(site_pid 1 storaged)
[ -n "$pid" ] || fail "no pid of site 1's storaged"
kill -9 "$pid"
rm -rf "$STATE/site1/data"
log "site 1's storaged (pid $pid) killed, its data directory deleted"
same() { cmp -s "$WORK/data" "$S2/safe/f"; }
wait_for 60 "the fsynced file, whole, through site 2's mount" same
log "part 1: the fsynced file is read back through site 2 after site 1's disk is gone"

# ---- 2. fewer holders than sync_copies: fsync fails, clearly --------------
if [ "$SC" -ge 2 ]; then
    pid=$(site_pid 3 storaged)
    [ -n "$pid" ] || fail "no pid of site 3's storaged"
    kill -9 "$pid"
    printf 'only one copy\n' >"$WORK/one"
    rc=0
    err=$(dd if="$WORK/one" of="$S2/safe/g" conv=fsync status=none 2>&1) || rc=$?
    [ "$rc" -ne 0 ] || fail "fsync with one holder of a --sync-copies 2 group succeeded"
    case "$err" in *"Input/output error"*) ;; *) fail "fsync failed, but not with EIO: $err" ;; esac
    grep -q "sync_copies asks for" "$STATE/site2/log/storaged.log" ||
        fail "site 2's storaged log does not say why the fsync failed"
    cmp -s "$WORK/one" "$S2/safe/g" || fail "the data of the failed fsync is not readable at site 2"
    log "part 2: fsync with one holder left failed with EIO: $err"
fi
pass
