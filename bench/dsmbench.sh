#!/usr/bin/env bash
# dsmbench.sh -- build and run the libdsm benchmark (bench/dsmbench.c).
#
# usage: bench/dsmbench.sh [--quick] [--dir DIR]
#
# Builds build/bench/dsmbench the way the tests are built (scripts/deps.sh if
# present, `meson setup build` if build/ is missing, ninja), then runs it in
# a fresh scratch directory: by default under the repo's build/bench-scratch/,
# with --dir inside DIR (which should be on the filesystem you mean to
# measure).  The scratch directory is removed at the end, on failure too.
#
# stdout: the figures, one key=value per line, nothing else.  Progress and
# build output go to stderr.  Exit status 0 whatever the targets say (this
# is a measurement, not a test); non-zero only on an error.
set -euo pipefail

usage() {
    echo "usage: $0 [--quick] [--dir DIR]" >&2
    exit 2
}

quick=
base=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=--quick ;;
        --dir) [ $# -ge 2 ] || usage; base=$2; shift ;;
        --dir=*) base=${1#--dir=} ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
    shift
done

if [ -n "$base" ]; then
    [ -d "$base" ] || { echo "dsmbench.sh: $base: not a directory" >&2; exit 1; }
    base=$(cd "$base" && pwd)           # before we cd to the repo
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# Everything the build prints goes to stderr: stdout is for figures only.
if [ -x scripts/deps.sh ]; then
    ./scripts/deps.sh >&2
fi
if [ ! -d build ]; then
    meson setup build >&2
fi
# bench/meson.build adds the target only if dsmbench.c existed when build/
# was configured.
if ! ninja -C build -t query bench/dsmbench >/dev/null 2>&1; then
    meson setup --reconfigure build >&2
fi
# Someone else may be running ninja in build/ at the same time; a collision
# fails one of the two, and a second try then finds the work done.
built=
for try in 1 2 3; do
    if ninja -C build bench/dsmbench >&2; then
        built=1
        break
    fi
    echo "dsmbench.sh: ninja failed (try $try of 3)" >&2
done
[ -n "$built" ] || { echo "dsmbench.sh: cannot build build/bench/dsmbench" >&2; exit 1; }

if [ -z "$base" ]; then
    base=$repo/build/bench-scratch
    mkdir -p "$base"
fi

scratch=
child=
cleanup() {
    # On a signal the benchmark may still run: stop it before removing its
    # files (it is ours, by pid).
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [ -n "$scratch" ]; then
        rm -rf -- "$scratch"
    fi
    # The default parent goes too once no other run uses it.
    rmdir -- "$repo/build/bench-scratch" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scratch=$(mktemp -d "$base/dsmbench.XXXXXX")

echo "dsmbench.sh: scratch directory $scratch ($(df -hP "$scratch" | awk 'NR == 2 { print $1 ", " $4 " free" }'))" >&2
# In the background, so that a signal runs the trap at once rather than
# when the benchmark ends; wait passes its exit status on.
"$repo/build/bench/dsmbench" $quick "$scratch" &
child=$!
wait "$child"
