#!/usr/bin/env bash
# model.sh -- random-operation integrity test (model_test.c) on a real
# LocusFS mount: MODEL_OPS operations (default 100000) checked against an
# in-memory model; MODEL_SEED replays a failing run (the seed is printed).
# Afterwards the cluster is restarted and a second, shorter run checks
# that files written before the restart read back right after it.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init model
find_helper MODEL_TEST model_test
find_helper ITOOL itool

cluster_up
mkdir -p "$MNT/m" || fail "mkdir in the mount"

rc=0
timeout -k 10 1200 "$MODEL_TEST" "$MNT/m" --ops "${MODEL_OPS:-100000}" \
    ${MODEL_SEED:+--seed "$MODEL_SEED"} &
track_pid $!
wait $! || rc=$?
[ "$rc" -eq 0 ] || fail "model_test found a disagreement (exit $rc; the seed is above)"

# Data written through the mount survives a clean restart of everything.
run "$ITOOL" mkfiles "$MNT/m" keep 20 --min 1 --max 2000000
cluster_down
cluster_up
run "$ITOOL" verify "$MNT/m" keep 20 --min 1 --max 2000000
pass
