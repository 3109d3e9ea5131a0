#!/usr/bin/env bash
# cli.sh -- locusctl dev up / dev down with two clusters side by side.
#
#  1. Each mount shows its cluster as its source: "locusfs:STATE" in
#     mountinfo (findmnt), type fuse.locusfs, so two clusters can be told
#     apart.
#  2. dev down with a directory that is not this state directory's mount
#     (the other cluster's mount, a typo, an existing plain directory, the
#     right mount with the other --state) exits non-zero with a message
#     that names the real mount and the --state to use, and touches
#     nothing: both clusters keep their mount (same mount id) and their
#     programs (same pids), and their files stay readable.
#  3. dev up over a non-empty directory refuses (and creates nothing, not
#     even the state directory) unless --force; with --force it mounts
#     over the files, which are back after dev down.
#  4. Every hint (dev up ... brings it back; dev down ... first) carries
#     the --state that was used.
#  5. The right dev down still stops its cluster cleanly, the other one
#     stays up.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init cli

STATE2=$WORK/state2
MNT2=$WORK/mnt2
mkdir -p "$MNT2"

# A dev up that should have been refused but was not (the defect this test
# looks for) starts a third cluster in $WORK/state3: stop it at exit too,
# before lib.sh's own cleanup.
cli_cleanup() {
    local f pid
    [ -d "$WORK/state3" ] || return 0
    timeout 60 "$LOCUSCTL" dev down "$WORK/full" --state "$WORK/state3" >&2 2>&1
    for f in "$WORK"/state3/run/*.pid; do
        [ -f "$f" ] || continue
        pid=$(tr -dc '0-9' <"$f")
        [ -n "$pid" ] && alive "$pid" && ours "$pid" && stop_pid "$pid" 10
    done
    return 0
}
trap 'rc=$?; cli_cleanup; (exit $rc); lib_cleanup' EXIT

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

# down_ok DIR STATE: dev down succeeds, DIR is unmounted, and the hint to
# bring the cluster back names its --state.
down_ok() {
    log "+ locusctl dev down $1 --state $2"
    timeout 120 "$LOCUSCTL" dev down "$1" --state "$2" >"$WORK/out" 2>&1 || {
        cat "$WORK/out" >&2
        fail "dev down $1 --state $2 failed"
    }
    cat "$WORK/out" >&2
    grep -qF "locusctl dev up $1 --state $2" "$WORK/out" || fail "dev down's hint lacks --state $2"
    ! is_mounted "$1" || fail "$1 still mounted after dev down"
}

# ---- two clusters; A may not be started over B's mount
log "+ locusctl dev up $MNT2 --state $STATE2"
timeout 120 "$LOCUSCTL" dev up "$MNT2" --state "$STATE2" >&2 || fail "dev up of cluster B failed"
track_b
wait_for 60 "the mount at $MNT2" is_mounted "$MNT2"
echo "cluster B" >"$MNT2/b.txt"
bmid=$(mount_id "$MNT2")
expect_refused "dev up of A over B's mount" \
    "$MNT2" "locusctl dev down $MNT2 --state $STATE2" -- \
    "$LOCUSCTL" dev up "$MNT2" --state "$STATE"
[ ! -e "$STATE" ] || fail "a refused dev up created the state directory $STATE"
[ "$(mount_id "$MNT2")" = "$bmid" ] || fail "B's mount changed after a refused dev up over it"
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

# ---- 2. dev down with a directory that is not this cluster's mount
before=$(snapshot)
expect_refused "dev down of B's mount with A's state" \
    "$MNT" "--state $STATE2" "locusctl dev down $MNT --state $STATE" -- \
    "$LOCUSCTL" dev down "$MNT2" --state "$STATE"
check_both_up "after dev down of B's mount with A's state"

expect_refused "dev down of A's mount with B's state" \
    "$MNT2" "locusctl dev down $MNT2 --state $STATE2" -- \
    "$LOCUSCTL" dev down "$MNT" --state "$STATE2"
check_both_up "after dev down of A's mount with B's state"

expect_refused "dev down of a typo" \
    "locusctl dev down $MNT --state $STATE" -- \
    "$LOCUSCTL" dev down "$WORK/mnnt" --state "$STATE"
check_both_up "after dev down of a typo"

mkdir "$WORK/plain"
expect_refused "dev down of a plain directory" \
    "locusctl dev down $MNT --state $STATE" -- \
    "$LOCUSCTL" dev down "$WORK/plain" --state "$STATE"
check_both_up "after dev down of a plain directory"

# The same through $LOCUS_STATE_DIR (lib_init sets it to $STATE): the hint
# still names the state directory.
expect_refused "dev down of B's mount, state from the environment" \
    "locusctl dev down $MNT --state $STATE" -- \
    "$LOCUSCTL" dev down "$MNT2"
check_both_up "after dev down of B's mount, state from the environment"

# ---- 4. hints of dev up carry --state
expect_refused "dev up of A elsewhere" \
    "locusctl dev down $MNT --state $STATE" -- \
    "$LOCUSCTL" dev up "$WORK/elsewhere" --state "$STATE"
check_both_up "after dev up of A elsewhere"
[ ! -e "$WORK/elsewhere" ] || fail "a refused dev up created $WORK/elsewhere"

# ---- 5. the right dev down stops B only, and says how to bring it back
down_ok "$MNT2" "$STATE2"
for n in mount storaged cssd; do
    pid=$(STATE=$STATE2 pid_of "$n") && [ -n "$pid" ] && alive "$pid" && fail "cluster B's $n (pid $pid) still runs"
done
is_mounted "$MNT" && all_alive "$STATE" || fail "cluster A went down with B"
[ "$(cat "$MNT/a.txt")" = "cluster A" ] || fail "$MNT/a.txt unreadable after B went down"

# ---- 3. dev up over a non-empty directory
mkdir "$WORK/full"
echo "local file" >"$WORK/full/local.txt"
expect_refused "dev up over a non-empty directory (new state)" \
    "$WORK/full" "not empty" "--force" -- \
    "$LOCUSCTL" dev up "$WORK/full" --state "$WORK/state3"
[ ! -e "$WORK/state3" ] || fail "a refused dev up created the state directory $WORK/state3"
expect_refused "dev up of B over a non-empty directory" \
    "$WORK/full" "not empty" "--force" -- \
    "$LOCUSCTL" dev up "$WORK/full" --state "$STATE2"
for n in mount storaged cssd; do
    pid=$(STATE=$STATE2 pid_of "$n") && [ -n "$pid" ] && alive "$pid" && fail "a refused dev up started $n"
done
! is_mounted "$WORK/full" || fail "a refused dev up mounted $WORK/full"
[ "$(cat "$WORK/full/local.txt")" = "local file" ] || fail "the local file changed"

log "+ locusctl dev up $WORK/full --state $STATE2 --force"
timeout 120 "$LOCUSCTL" dev up "$WORK/full" --state "$STATE2" --force >&2 || fail "dev up --force failed"
MNT2=$WORK/full
track_b
is_mounted "$WORK/full" || fail "dev up --force did not mount $WORK/full"
[ "$(cat "$WORK/full/b.txt")" = "cluster B" ] || fail "cluster B's file is not visible at $WORK/full"
[ ! -e "$WORK/full/local.txt" ] || fail "the local file shows through the mount"
run "$LOCUSCTL" dev down "$WORK/full" --state "$STATE2"
[ "$(cat "$WORK/full/local.txt")" = "local file" ] || fail "the local file is not back after dev down"

# ---- A stops cleanly too, and its hint names its state
down_ok "$MNT" "$STATE"
pass
