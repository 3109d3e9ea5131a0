#!/usr/bin/env bash
# repl_delay.sh -- propagation delay of a commit (docs/replication.md,
# "Push"): a two-site dev cluster (`locusctl dev up --sites 2`); N times,
# after a random idle pause, 8 bytes of a file rewritten in one commit at
# site 1's storage daemon (the primary), then site 2's copy asked for
# until its vector equals site 1's (bench/repldelay.c): the time from the
# commit's answer to the first equal vector.  The reference, measured in the same run: one such
# question (the cost of looking).
#
# usage: bench/repl_delay.sh [BUILD_DIR] [N]   (default build, 40 commits)
# stdout: key=value lines; progress on stderr.  Needs /dev/fuse.
set -euo pipefail

build=${1:-build}
n=${2:-40}
ctl=$(realpath "$build/ctl/locusctl")
work=$(mktemp -d "${TMPDIR:-/tmp}/repl_delay.XXXXXX")
mnt=$work/mnt state=$work/state
mkdir -p "$mnt"

cleanup() {
    timeout 60 "$ctl" dev down "$mnt" --state "$state" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT


timeout 120 "$ctl" dev up "$mnt" --state "$state" --sites 2 >&2
"$ctl" sync --state "$state" --timeout 60 >/dev/null

"$(dirname "$ctl")/../bench/repldelay" "$state" "$n"
