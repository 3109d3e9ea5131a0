# tally.sh -- count the results of `meson test` runs (sourced by test.sh).
#
#   tally_init
#   tally_add LOG RC     LOG: a meson testlog.json (may be missing), RC: the
#                        exit status of the `meson test` that wrote it
#   tally_one NAME RC    one check that is not a meson test (fuzzing):
#                        passed when RC is 0, failed otherwise
#   tally_line           prints "tests: N passed, N failed, N skipped"
#   tally_ok             true when nothing failed
#
# Rules:
# - OK passes; FAIL, TIMEOUT, ERROR and UNEXPECTEDPASS fail; SKIP is counted
#   as skipped.
# - Under CI (CI=true) every skipped test is a failure as well: CI installs
#   everything the tests need, so a skip there means a test did not run.
# - A `meson test` that exited non-zero without recording a failing test
#   (it could not build, or found nothing to run, or died) counts as one
#   failure: its exit status is never ignored.
# - A run that recorded no result at all counts as one failure too.

tally_init() { T_PASSED=0 T_FAILED=0 T_SKIPPED=0; }

tally_add() {   # tally_add LOG RC
    local log=$1 rc=$2 ok=0 bad=0 skip=0
    if [ -f "$log" ]; then
        ok=$(grep -c '"result": "OK"' "$log" || true)
        bad=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
        skip=$(grep -c '"result": "SKIP"' "$log" || true)
    fi
    if [ "$skip" -gt 0 ] && [ "${CI:-}" = true ]; then
        echo "tally: $skip test(s) skipped under CI: counted as failed" >&2
        bad=$((bad + skip))
    fi
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "tally: meson test exited $rc with no failing test recorded: counted as one failure" >&2
        bad=1
    fi
    if [ $((ok + bad + skip)) -eq 0 ]; then
        echo "tally: no test result recorded in $log: counted as one failure" >&2
        bad=1
    fi
    T_PASSED=$((T_PASSED + ok))
    T_FAILED=$((T_FAILED + bad))
    T_SKIPPED=$((T_SKIPPED + skip))
}

tally_one() {   # tally_one NAME RC
    if [ "$2" -eq 0 ]; then
        T_PASSED=$((T_PASSED + 1))
    else
        echo "tally: $1 failed (exit $2)" >&2
        T_FAILED=$((T_FAILED + 1))
    fi
}

tally_line() { echo "tests: $T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"; }

tally_ok() { [ "$T_FAILED" -eq 0 ]; }
