#!/usr/bin/env bash
# cli.sh -- locusctl dev up / dev down with two clusters side by side.
#
#  1. Each mount shows its cluster as its source: "locusfs:STATE" in
#     mountinfo (findmnt), type fuse.locusfs, so two clusters can be told
#     apart.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init cli

STATE2=$WORK/state2
MNT2=$WORK/mnt2
mkdir -p "$MNT2"

# Cluster B's programs are stopped at exit even if the test fails half way
# (lib.sh takes care of cluster A): the mount first, it unmounts on SIGTERM.
track_b() {
    local n pid
    for n in mount storaged cssd; do
        pid=$(STATE=$STATE2 pid_of "$n") || continue
        [ -n "$pid" ] && track_pid "$pid"
    done
    track_mount "$MNT2"
}

# snapshot: the mount ids and the pids of both clusters, one line.
snapshot() {
    local s
    s="A:$(mount_id "$MNT" 2>/dev/null):$(pid_of mount):$(pid_of storaged):$(pid_of cssd)"
    s="$s B:$(mount_id "$MNT2" 2>/dev/null):$(STATE=$STATE2 pid_of mount):$(STATE=$STATE2 pid_of storaged)"
    s="$s:$(STATE=$STATE2 pid_of cssd)"
    echo "$s"
}

# all_alive STATE: every program of that cluster runs.
all_alive() {
    local n pid
    for n in mount storaged cssd; do
        pid=$(STATE=$1 pid_of "$n") || return 1
        alive "$pid" || return 1
    done
}

check_both_up() {
    local what=$1
    is_mounted "$MNT" || fail "$what: cluster A is no longer mounted at $MNT"
    is_mounted "$MNT2" || fail "$what: cluster B is no longer mounted at $MNT2"
    all_alive "$STATE" || fail "$what: a program of cluster A is gone"
    all_alive "$STATE2" || fail "$what: a program of cluster B is gone"
    [ "$(snapshot)" = "$before" ] || fail "$what: mounts or pids changed: was '$before', now '$(snapshot)'"
    [ "$(cat "$MNT/a.txt")" = "cluster A" ] || fail "$what: $MNT/a.txt unreadable"
    [ "$(cat "$MNT2/b.txt")" = "cluster B" ] || fail "$what: $MNT2/b.txt unreadable"
}

# expect_refused WHAT EXPECTED-SUBSTRING... -- COMMAND...: COMMAND exits 1 and
# its stderr contains every EXPECTED-SUBSTRING.
expect_refused() {
    local what=$1 rc=0 s
    local -a want=()
    shift
    while [ "$1" != -- ]; do want+=("$1"); shift; done
    shift
    log "+ $*"
    timeout 120 "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    cat "$WORK/out" "$WORK/err" >&2
    [ "$rc" -ne 124 ] || fail "$what: still running after 120 s"
    [ "$rc" -eq 1 ] || fail "$what: exit status $rc, expected 1 (refused)"
    for s in "${want[@]}"; do
        grep -qF -- "$s" "$WORK/err" || fail "$what: the message does not say '$s'"
    done
}

# ---- two clusters
log "+ locusctl dev up $MNT2 --state $STATE2"
timeout 120 "$LOCUSCTL" dev up "$MNT2" --state "$STATE2" >&2 || fail "dev up of cluster B failed"
track_b
wait_for 60 "the mount at $MNT2" is_mounted "$MNT2"
echo "cluster B" >"$MNT2/b.txt"
cluster_up
echo "cluster A" >"$MNT/a.txt"
# ---- 1. the source names the cluster
src=$(findmnt -n -o SOURCE --mountpoint "$MNT") || fail "findmnt $MNT failed"
[ "$src" = "locusfs:$STATE" ] || fail "source of $MNT is '$src', expected 'locusfs:$STATE'"
src=$(findmnt -n -o SOURCE --mountpoint "$MNT2") || fail "findmnt $MNT2 failed"
[ "$src" = "locusfs:$STATE2" ] || fail "source of $MNT2 is '$src', expected 'locusfs:$STATE2'"
for m in "$MNT" "$MNT2"; do
    t=$(findmnt -n -o FSTYPE --mountpoint "$m")
    [ "$t" = fuse.locusfs ] || fail "type of $m is '$t', expected fuse.locusfs"
done
mount | grep -qF "locusfs:$STATE2 on $MNT2 type fuse.locusfs" || fail "mount(8) does not list cluster B by its state"

[ "$(cat "$MNT/a.txt")" = "cluster A" ] && [ "$(cat "$MNT2/b.txt")" = "cluster B" ] || fail "files unreadable"
run "$LOCUSCTL" dev down "$MNT2" --state "$STATE2"
cluster_down
pass
