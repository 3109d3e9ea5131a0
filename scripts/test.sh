#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, build with
# warnings as errors, run every test (unit + integration), then build the
# unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer and
# run them there.  Prints one closing line "N passed, N failed".
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

passed=0 failed=0
run_suite() {   # run_suite DIR [meson test options...]
    local dir=$1; shift
    local log="$dir/meson-logs/testlog.json" rc=0
    meson test -C "$dir" --print-errorlogs "$@" || rc=$?
    if [ -f "$log" ]; then
        passed=$((passed + $(grep -c '"result": "OK"' "$log" || true)))
        passed=$((passed + $(grep -c '"result": "SKIP"' "$log" || true) * 0))
        failed=$((failed + $(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)))
    fi
    return 0
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

echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
