#!/usr/bin/env bash
# Fuzz the decoders with libFuzzer (tests/fuzz/, docs/testing.md).
#
# Builds the fuzz targets in a separate clang build dir (ASan + UBSan, the
# libraries instrumented for coverage), replays every kept regression input
# (tests/fuzz/regress/<target>/), then runs each target for a bounded time
# from its seed corpus (tests/fuzz/corpus/<target>/), two at a time.  New
# inputs the fuzzer finds go to a scratch dir, never into the repository.
# Prints one line per target, "fuzz <target>: N execs, N crashes", and a
# summary line; exits non-zero if a regression input or the fuzzer crashed
# (the crashing inputs and logs are kept under BUILD/fuzz-artifacts/).
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [TARGET...]   fuzz (default: all, 60 s each)
#   scripts/fuzz.sh --regress [TARGET...]                 only replay the regression inputs
#   scripts/fuzz.sh --seed                                rewrite the seed corpora (gen_corpus)
#
# Environment: FUZZ_TIME, FUZZ_JOBS (same as -t, -j), FUZZ_BUILD (build dir,
# default build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

all=(frame msg handshake segment changeset rs note)
time=${FUZZ_TIME:-60}
jobs=${FUZZ_JOBS:-2}
build=${FUZZ_BUILD:-build-fuzz}
mode=fuzz
targets=()
while [ $# -gt 0 ]; do
    case $1 in
        -t) time=$2; shift 2 ;;
        -j) jobs=$2; shift 2 ;;
        --regress) mode=regress; shift ;;
        --seed) mode=seed; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target '$t' (${all[*]})" >&2; exit 2; }
done

if ! command -v clang >/dev/null; then
    echo "fuzz: clang is not installed (scripts/deps.sh installs clang and libclang-rt-14-dev)" >&2
    exit 1
fi

opts=(--werror -Dfuzz=true -Dtests=false -Db_sanitize=address,undefined -Db_lundef=false
      -Dbuildtype=debugoptimized)
if [ -f "$build/build.ninja" ]; then
    meson configure "$build" "${opts[@]}" >/dev/null
else
    CC=clang meson setup "$build" "${opts[@]}" >/dev/null
fi
exes=()
for t in "${targets[@]}"; do exes+=("tests/fuzz/fuzz_$t"); done
ninja -C "$build" "${exes[@]}" tests/fuzz/gen_corpus >/dev/null

if [ $mode = seed ]; then
    rm -rf tests/fuzz/corpus
    "$build/tests/fuzz/gen_corpus" tests/fuzz/corpus
    echo "fuzz: seed corpora written to tests/fuzz/corpus/"
    exit 0
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
keep="$build/fuzz-artifacts"
work=$(mktemp -d "${TMPDIR:-/tmp}/locus-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0

# 1. Every input that once crashed a target must now pass.
nreg=0
for t in "${targets[@]}"; do
    inputs=(tests/fuzz/regress/"$t"/*)
    [ -e "${inputs[0]}" ] || continue
    if "$build/tests/fuzz/fuzz_$t" -runs=1 "${inputs[@]}" >"$work/regress-$t.log" 2>&1; then
        echo "fuzz $t: ${#inputs[@]} regression inputs pass"
    else
        echo "fuzz $t: a regression input fails:" >&2
        tail -n 40 "$work/regress-$t.log" >&2
        mkdir -p "$keep"
        cp "$work/regress-$t.log" "$keep/"
        failed=1
    fi
    nreg=$((nreg + ${#inputs[@]}))
done
if [ $mode = regress ]; then
    echo "fuzz: $nreg regression inputs replayed, $([ $failed = 0 ] && echo all pass || echo FAILURES)"
    exit $failed
fi

# 2. Fuzz each target for $time seconds from its seed corpus.
run() {
    local t=$1 d="$work/$t"
    mkdir -p "$d/corpus"
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$time" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$d/" "$d/corpus" "tests/fuzz/corpus/$t" \
        >"$d/log" 2>&1 || echo $? >"$d/rc"
}
running=0
for t in "${targets[@]}"; do
    if [ $running -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run "$t" &
    running=$((running + 1))
done
wait

total=0 crashes=0
for t in "${targets[@]}"; do
    d="$work/$t"
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n 1)
    n=${n:-0}
    c=$(find "$d" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l)
    if [ -f "$d/rc" ] && [ "$c" -eq 0 ]; then
        c=1     # died without leaving an input (e.g. killed)
    fi
    if [ "$c" -gt 0 ]; then
        mkdir -p "$keep/$t"
        cp "$d/log" "$keep/$t/"
        find "$d" -maxdepth 1 -type f ! -name log ! -name rc -exec cp {} "$keep/$t/" \;
        echo "fuzz $t: crashed; input and log kept in $keep/$t/:" >&2
        grep -E 'ERROR|fuzz check failed|SUMMARY|runtime error' "$d/log" | head -n 10 >&2 || true
        failed=1
    fi
    echo "fuzz $t: $n execs, $c crashes"
    total=$((total + n))
    crashes=$((crashes + c))
done
echo "fuzz: ${#targets[@]} targets, $total execs, $crashes crashes, $nreg regression inputs replayed (${time} s each)"
exit $failed
