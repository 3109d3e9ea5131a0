#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, build with
# warnings as errors, run every test (unit + integration), then build the
# unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer and
# run them there, and the concurrent stress test with the mount and the
# daemons of that build, then replays the fuzz regression inputs and fuzzes
# every decoder for a bounded time (scripts/fuzz.sh).  Prints one closing line "tests: N passed, N failed,
# N skipped" (scripts/tally.sh: under CI=true a skipped test is a failure,
# and a non-zero exit of meson test is never ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

./scripts/deps.sh

setup() {   # setup DIR [meson options...]
    local dir=$1; shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" --werror "$@" >/dev/null
    else
        meson setup "$dir" --werror "$@" >/dev/null
    fi
}

. scripts/tally.sh
tally_init
run_suite() {   # run_suite DIR [meson test options...]
    local dir=$1; shift
    local log="$dir/meson-logs/testlog.json" rc=0
    rm -f "$log"
    meson test -C "$dir" --print-errorlogs "$@" || rc=$?
    tally_add "$log" "$rc"
}

echo "== build (warnings are errors)"
setup build
ninja -C build
echo "== tests"
run_suite build

echo "== unit tests under ASan + UBSan"
setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite build-asan --suite unit --timeout-multiplier 4

echo "== concurrent stress with the mount and daemons under ASan + UBSan"
# stress.sh sets its own sanitizer options and fails on any report in the
# daemons' or the mount's log.
run_suite build-asan stress --timeout-multiplier 2

echo "== fuzzing (libFuzzer, about a minute per target, docs/testing.md)"
rc=0
./scripts/fuzz.sh || rc=$?
tally_one fuzz "$rc"

tally_line
tally_ok
