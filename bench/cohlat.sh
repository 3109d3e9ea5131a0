#!/usr/bin/env bash
# cohlat.sh -- the coherence delay (docs/coherence.md): a two-site dev
# cluster and two more mounts with long caches (entry_timeout and
# attr_timeout 60 s), one on site 1 and one on site 2; bench/cohlat runs N
# commits through site 1's dev mount while a reader holds the file open
# (1) through the second mount of site 1, (2) through the mount of site 2,
# and reports the time from a commit's close() to the reader seeing it.
#
# usage: bench/cohlat.sh [BUILD_DIR] [N]   (default build, 1000 commits)
# stdout: key=value lines per case; progress on stderr.  Needs /dev/fuse.
set -euo pipefail

build=$(realpath "${1:-build}")
n=${2:-1000}
ctl=$build/ctl/locusctl
work=$(mktemp -d "${TMPDIR:-/tmp}/cohlat.XXXXXX")
mnt=$work/mnt state=$work/state
pids=()

cleanup() {
    for m in "$work/b1" "$work/b2"; do
        fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    timeout 60 "$ctl" dev down "$mnt" --state "$state" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$mnt" "$work/b1" "$work/b2"
timeout 120 "$ctl" dev up "$mnt" --state "$state" --sites 2 >&2
portf=$state/site1/run/cssd.port
more() {        # DIR SITE
    "$build/fused/locusfs-mount" "$1" -f \
        -o "key=$state/cluster.key,css=127.0.0.1:$(cat "$portf"),css_port_file=$portf" \
        -o "bind=127.0.0.$2,site=$2,entry_timeout=60,attr_timeout=60" >"$work/mount-$2.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 200); do mountpoint -q "$1" && stat "$1/." >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "cohlat.sh: the mount at $1 did not come up" >&2
    exit 1
}
more "$work/b1" 1
more "$work/b2" 2
"$ctl" sync --state "$state" --timeout 60 >/dev/null

echo "case=same_site" && "$build/bench/cohlat" "$mnt/s1/f1" "$work/b1/f1" "$n"
echo "case=other_site" && "$build/bench/cohlat" "$mnt/s1/f2" "$work/b2/f2" "$n"
