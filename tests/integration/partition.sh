#!/usr/bin/env bash
# partition.sh -- `locusctl dev partition DIR SPEC` and `locusctl dev heal
# DIR` (issue #9's tool for people trying partitions out; ctl/ctl_net.c).
# Three sites, real daemons, real mounts, real nftables rules.
#  1. Bad specs (one group, a site twice, an unknown site, garbage) and a
#     DIR that is not the cluster's mount are refused, and leave no rules.
#  2. dev partition DIR 1,2/3: the cluster's table drops packets between
#     {A1, A2} and A3.  A file written through site 1's
#     mount reaches site 2's copy but not site 3's: `locusctl sync` (the
#     copies reachable from site 1) says it left site 3 out, `locusctl
#     copies` shows site 3 out of reach.
#     Site 3's mount fails a call after its timeout and holds off the
#     sites it could not reach (fused/us_rpc.h), logged; its next call
#     fails at once with EHOSTUNREACH.
#  3. dev heal DIR: the table is gone, site 3 catches up (sync converges,
#     the copies are equal, site 3's mount reads the file and ends the
#     hold-off).
#  4. A second partition replaces the first (3/1,2 then 1/2,3: one table);
#     dev down removes the table, so the next dev up is whole.
# The sites get addresses of their own (A1..A3 = 127.0.77.1..3, not the
# 127.0.0.k of the other tests): the cut is machine-wide, and must not cut
# apart the sites of a test running beside this one.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init partition
A1=127.0.77.1 A2=127.0.77.2 A3=127.0.77.3

command -v nft >/dev/null || fail "nft is not installed (package nftables, scripts/deps.sh)"
nft list tables >/dev/null 2>&1 || skip "nftables is not usable here (no CAP_NET_ADMIN?)"

# The mounts wait 8 s for an unreachable site instead of the default 30 s:
# what is tested is that a call fails (never hangs) and is held off, not
# how long the default is.
wrap_daemons fused/locusfs-mount -o timeout=8
log "+ locusctl dev up $MNT --state $STATE --sites 3 --addrs $A1,$A2,$A3"
rc=0
timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" --sites 3 --addrs "$A1,$A2,$A3" >&2 || rc=$?
[ "$rc" -eq 0 ] || fail "locusctl dev up --sites 3 --addrs failed (exit $rc)"
for k in 1 2 3; do
    wait_for 60 "the mount of site $k" is_mounted "$MNT/s$k"
    wait_for 60 "the mount of site $k to answer" stat "$MNT/s$k/."
done

# The CSS pushes mount table changes to registered storage sites
# (LP_FS_CSS_NOTE_MTAB, docs/protocol.md): site 1 heard of sites 2 and 3.
out=$("$LOCUSCTL" status --json --state "$STATE") || fail "status --json failed"
notes=$(echo "$out" | grep -o '"css_notes":[0-9]*' | head -n 1 | cut -d: -f2)
[ -n "$notes" ] && [ "$notes" -ge 1 ] || fail "site 1's storage site was told of no mount table change: $notes"

# our table: whatever `dev partition` named it
our_tables() { nft list tables 2>/dev/null | grep -c 'locusfs_dev_' || true; }
before=$(our_tables)

# ---- 1. refusals ----------------------------------------------------------------
for spec in "1,2,3" "1,1/2,3" "1,2/4" "1,2/x" "1/2" "0/1,2,3"; do
    out=$("$LOCUSCTL" dev partition "$MNT" "$spec" --state "$STATE" 2>&1) &&
        fail "dev partition $spec was accepted: $out"
    case "$out" in *"bad partition"*) ;; *) fail "dev partition $spec: no clear message: $out" ;; esac
done
out=$("$LOCUSCTL" dev partition "$WORK" 1,2/3 --state "$STATE" 2>&1) &&
    fail "dev partition of a directory that is not the mount was accepted"
case "$out" in *"nothing was done"*) ;; *) fail "dev partition elsewhere: no clear message: $out" ;; esac
[ "$(our_tables)" -eq "$before" ] || fail "a refused partition left a table behind"
[ ! -e "$STATE/partition" ] || fail "a refused partition was recorded"

# ---- 2. 1,2/3 ----------------------------------------------------------------
out=$("$LOCUSCTL" dev partition "$MNT" 1,2/3 --state "$STATE") || fail "dev partition 1,2/3 failed: $out"
TABLE=$(echo "$out" | grep -o 'locusfs_dev_[0-9a-f]*' | head -n 1)
[ -n "$TABLE" ] || fail "dev partition does not name its table: $out"
has_table() { nft list tables 2>/dev/null | grep -c "inet $TABLE\$" || true; }
[ "$(has_table)" -eq 1 ] || fail "no table $TABLE after dev partition"
[ "$(cat "$STATE/partition")" = "1,2/3" ] || fail "the partition is not recorded"
head -c 200000 /dev/urandom >"$WORK/f"
cp "$WORK/f" "$MNT/s1/f" || fail "write through site 1's mount"
# (copies exits 1 while site 3 is out of reach: look at what it prints)
site2_has_f() {
    local out
    out=$("$LOCUSCTL" copies /f --state "$STATE" 2>&1)
    case "$out" in *"site 2: vv "*", 200000 bytes"*) return 0 ;; esac
    return 1
}
wait_for 60 "site 2's copy of /f" site2_has_f
# sync waits for the copies reachable from here (site 1's side), and says
# which site it left out
out=$("$LOCUSCTL" sync --timeout 60 --state "$STATE" 2>&1) || fail "sync on site 1's side failed: $out"
case "$out" in *"left out: site 3"*) ;; *) fail "sync does not say site 3 was left out: $out" ;; esac
out=$("$LOCUSCTL" copies /f --state "$STATE" 2>&1) && fail "copies found every copy equal across a partition: $out"
case "$out" in *"site 3: $A3:"*"no answer"*) ;; *) fail "copies does not show site 3 out of reach: $out" ;; esac
cmp -s "$WORK/f" "$MNT/s2/f" || fail "site 2's mount does not read the file"
# Site 3's mount: a call fails after its timeout (never hangs), and what it
# could not reach for a whole call is held off (fused/us_rpc.h), logged.
rc=0
timeout 120 stat "$MNT/s3/f" >/dev/null 2>"$WORK/s3.err" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "stat through the cut-off site 3: exit $rc (hung or worked)"
log "stat through site 3 across the cut: $(cat "$WORK/s3.err")"
grep -q "held off" "$STATE/site3/log/mount.log" || fail "site 3's mount did not hold off what it could not reach"
# The next call fails at once, "unreachable", not after its whole timeout:
# the connection made before the cut is not trusted (fused/us_rpc.c).
rc=0
timeout 120 stat "$MNT/s3/f" >/dev/null 2>"$WORK/s3.err" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a second stat through the cut-off site 3: exit $rc"
s3err=$(cat "$WORK/s3.err")
case "$s3err" in *"No route to host"*) ;;
    *) fail "a second stat through the held-off site 3 did not fail with EHOSTUNREACH: $s3err" ;; esac

# ---- 3. heal --------------------------------------------------------------------
run "$LOCUSCTL" dev heal "$MNT" --state "$STATE"
[ "$(has_table)" -eq 0 ] || fail "the table is still there after dev heal"
[ ! -e "$STATE/partition" ] || fail "dev heal left the record"
run "$LOCUSCTL" sync --timeout 90 --state "$STATE"
out=$("$LOCUSCTL" copies /f --state "$STATE" 2>&1) || fail "the copies differ after the heal: $out"
wait_for 60 "site 3's mount to read the file" cmp -s "$WORK/f" "$MNT/s3/f"
grep -q "reachable again" "$STATE/site3/log/mount.log" || fail "site 3's mount did not end the hold-off"
out=$("$LOCUSCTL" dev heal "$MNT" --state "$STATE" 2>&1) || fail "a second dev heal failed: $out"
case "$out" in *"was not partitioned"*) ;; *) fail "a second dev heal does not say so: $out" ;; esac

# ---- 4. replace, then dev down removes it ---------------------------------------
run "$LOCUSCTL" dev partition "$MNT" 3/1,2 --state "$STATE"
run "$LOCUSCTL" dev partition "$MNT" 1/2,3 --state "$STATE"
[ "$(has_table)" -eq 1 ] || fail "no table after the second partition"
[ "$(our_tables)" -eq $((before + 1)) ] || fail "two partitions made two tables"
rules=$(nft list ruleset)       # (not piped into grep -q: pipefail and SIGPIPE)
case "$rules" in *"ip saddr $A1 ip daddr { $A2, $A3 } drop"*) ;;
    *) fail "the second partition's rule is not there: $rules" ;; esac
case "$rules" in *"daddr $A3 drop"*) fail "the first partition's rule is still there" ;; esac
cluster_down
[ "$(has_table)" -eq 0 ] || fail "dev down left the partition's table"
[ ! -e "$STATE/partition" ] || fail "dev down left the record"
pass
