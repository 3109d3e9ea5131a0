#!/usr/bin/env bash
# fsbench.sh -- LocusFS against a reference FUSE file system measured in the
# same run on the same disk: libfuse's passthrough_ll example (built from
# the copy libfuse3-dev ships, see bench/passthrough/build.sh) mounted over
# a scratch directory next to the one-node LocusFS cluster's state.
#
# usage: bench/fsbench.sh [--quick] [--pt-vs-pt]
#        bench/fsbench.sh --sites N --copies K [--rounds R] [--quick]
#                         [--yardstick DIR]
#   --quick     256 MiB instead of 1 GiB, 2,000 files instead of 10,000
#               (with --sites: the yardstick's own --quick)
#   --pt-vs-pt  measure passthrough_ll against a second passthrough_ll mount
#               in place of LocusFS (to check the benchmark itself; every
#               ratio should then be close to 1)
#   --sites N --copies K   the replication benchmark (issue #8), see
#               "Replicated mode" below and docs/bench.md
#
# Replicated mode (--sites N, 2 <= N <= 32, 2 <= K <= N): the shared
# yardstick (DIR/fsbench.sh: fio seq/rand, mdbench, untar, find+cat,
# rm -rf; DIR is --yardstick, else $FSBENCH_YARDSTICK, else the first of
# ../shared/bench and ../../shared/bench beside the repository that has
# fsbench.sh) runs, whole, on four targets:
#   pt   passthrough_ll -o writeback,cache=auto (DIR/passthrough-up.sh)
#   l1   a one-site dev cluster, file group /b1 (--copies 1)
#   r1   an N-site dev cluster, file group /r1 on site 1 (--copies 1)
#   rK   the same N-site cluster, file group /rK on sites 1..N (--copies K)
# each run in its group's directory under site 1's mount (site 1 is the
# group's primary, so the workloads write where phase 1 commits).  Rounds
# alternate the order (pt l1 r1 rK, then rK r1 l1 pt, ...).  After each
# phase that writes (seqwrite_1m, randwrite_4k, the mdbench block,
# untar+sync, rm_rf) the yardstick is paused in the settle that follows
# (SIGSTOP to its process group while it sleeps there, outside the clocks
# and outside any call on the mount) and `locusctl sync` is timed on the
# LocusFS targets: the replication lag behind that phase.  On the K-copy
# group `locusctl copies` then compares the copies of the sequential file
# and of the untarred tree.  stdout, after every round: a markdown table of
# the medians of the rounds so far, with ratios (speed ratios: higher is
# better, also for times) and the GlusterFS replica 3 figures of issue #8;
# stderr: progress and every figure of every run.  Exit status 1 if a phase
# failed (the daemons' logs are kept under build/fsbench-fail.<pid>/).
#
# Builds what it needs (scripts/deps.sh, `meson setup build` if build/ is
# missing, ninja, the passthrough reference, build/bench/fsbench from
# bench/fsbench.c), starts `locusctl dev up` with its state under
# build/fsbench.<pid>/, runs each workload twice on each (reference,
# LocusFS, LocusFS, reference; the mean is reported), and stops both mounts
# and the cluster in an EXIT trap, always.
#
# Workloads (bench/fsbench.c):
#   seqwrite  one file, 1 MiB writes, fsync before close (MiB/s)
#   seqread   that file after `sync; echo 3 > /proc/sys/vm/drop_caches` (MiB/s)
#   create    N files of 4 KiB (open O_CREAT|O_EXCL, write, close) (files/s)
#   stat      stat of those N files, after dropping caches (stats/s)
#   unlink    unlink of those N files (unlinks/s)
#
# stdout: key=value lines only: locus_* and pt_* figures, the ratios
# (locus/passthrough) and one target line per ratio that has a target
# (seqwrite >= 0.7, seqread >= 0.8, create >= 0.3, stat >= 0.5).
# Progress and build output go to stderr.  Exit status 0 whatever the
# targets say (a measurement, not a test); non-zero only on an error.
# Needs root (FUSE mounts with allow_other, dropping caches).
set -euo pipefail

usage() {
    echo "usage: $0 [--quick] [--pt-vs-pt]" >&2
    echo "       $0 --sites N --copies K [--rounds R] [--quick] [--yardstick DIR]" >&2
    exit 2
}

quick=
ptvspt=
nsites=
ncopies=
rounds=2
yard=${FSBENCH_YARDSTICK:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --pt-vs-pt) ptvspt=1 ;;
        --sites) [ $# -ge 2 ] || usage; nsites=$2; shift ;;
        --copies) [ $# -ge 2 ] || usage; ncopies=$2; shift ;;
        --rounds) [ $# -ge 2 ] || usage; rounds=$2; shift ;;
        --yardstick) [ $# -ge 2 ] || usage; yard=$2; shift ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
    shift
done
isnum() { [[ "$1" =~ ^[0-9]+$ ]]; }
if [ -n "$nsites$ncopies" ]; then
    isnum "$nsites" && isnum "$ncopies" && [ "$nsites" -ge 2 ] && [ "$nsites" -le 32 ] &&
        [ "$ncopies" -ge 2 ] && [ "$ncopies" -le "$nsites" ] && [ -z "$ptvspt" ] || usage
fi
isnum "$rounds" && [ "$rounds" -ge 1 ] && [ "$rounds" -le 9 ] || usage

if [ -n "$quick" ]; then
    mib=256
    nfiles=2000
else
    mib=1024
    nfiles=10000
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
say() { echo "fsbench: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (FUSE mounts with allow_other, drop_caches)"
[ -c /dev/fuse ] || die "no /dev/fuse"

# ---- build (everything to stderr: stdout is for figures) ----
if [ -x scripts/deps.sh ]; then
    ./scripts/deps.sh >&2
fi
command -v fusermount3 >/dev/null || die "fusermount3 missing (package fuse3)"
if [ ! -d build ]; then
    meson setup build >&2
fi
locusctl=$repo/build/ctl/locusctl
if [ -z "$ptvspt" ]; then
    # Someone else may be running ninja in build/ at the same time; a
    # collision fails one of the two, and a second try finds the work done.
    built=
    for try in 1 2 3; do
        if ninja -C build >&2; then
            built=1
            break
        fi
        say "ninja failed (try $try of 3)"
    done
    [ -n "$built" ] || die "cannot build (ninja -C build)"
    [ -x "$locusctl" ] || die "$locusctl not built (use --pt-vs-pt to check the benchmark alone)"
fi
pt_bin=$(bench/passthrough/build.sh "$repo/build/bench/passthrough_ll")
fsb=$repo/build/bench/fsbench
if [ ! -x "$fsb" ] || [ bench/fsbench.c -nt "$fsb" ]; then
    ${CC:-cc} -O2 -g -Wall -Wextra -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
        bench/fsbench.c -o "$fsb.tmp.$$" >&2
    mv -f "$fsb.tmp.$$" "$fsb"
fi

if [ -n "$nsites" ]; then
    # shellcheck source=bench/fsbench-repl.sh
    . "$repo/bench/fsbench-repl.sh"
    exit 0   # not reached: fsbench-repl.sh exits
fi

# ---- scratch, mounts, cleanup ----
scratch=$repo/build/fsbench.$$
pt_mnt=$scratch/pt-mnt
lo_mnt=$scratch/locus-mnt
lo_state=$scratch/locus-state
pids=()
cluster_started=

is_mounted() {
    awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo
}

wait_mounted() {   # wait_mounted DIR PID: up to 30 s, or until PID dies
    local deadline=$(( $(date +%s) + 30 ))
    until is_mounted "$1"; do
        [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || die "the mount of $1 exited"
        [ "$(date +%s)" -lt "$deadline" ] || die "$1 not mounted after 30 s"
        sleep 0.05
    done
}

cleanup() {
    local rc=$? m pid f
    trap - EXIT INT TERM
    set +e
    for m in "$pt_mnt" "$lo_mnt"; do
        if [ -n "$ptvspt" ] || [ "$m" = "$pt_mnt" ]; then
            is_mounted "$m" && { fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m"; }
        fi
    done
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "$cluster_started" ]; then
        timeout 60 "$locusctl" dev down "$lo_mnt" --state "$lo_state" >&2 2>&1 ||
            say "locusctl dev down failed"
        for f in "$lo_state"/run/*.pid; do
            [ -f "$f" ] || continue
            pid=$(tr -dc '0-9' <"$f")
            case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
                *locus*) say "still running: $f ($pid)"; kill -KILL "$pid" ;;
            esac
        done
        is_mounted "$lo_mnt" && fusermount3 -u -z "$lo_mnt"
    fi
    rm -rf --one-file-system "$scratch"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

mkdir -p "$scratch/pt-src" "$pt_mnt" "$lo_mnt"
"$pt_bin" -f -o "source=$scratch/pt-src,default_permissions,allow_other" "$pt_mnt" \
    >"$scratch/pt.log" 2>&1 &
pids+=($!)
wait_mounted "$pt_mnt" "$!"
if [ -n "$ptvspt" ]; then
    mkdir -p "$scratch/locus-src"
    "$pt_bin" -f -o "source=$scratch/locus-src,default_permissions,allow_other" "$lo_mnt" \
        >"$scratch/pt2.log" 2>&1 &
    pids+=($!)
    wait_mounted "$lo_mnt" "$!"
    say "pt-vs-pt: the locus_ figures are a second passthrough_ll mount"
else
    cluster_started=1
    timeout 120 "$locusctl" dev up "$lo_mnt" --state "$lo_state" >&2 ||
        die "locusctl dev up failed; logs in $lo_state/log (removed at exit)"
    wait_mounted "$lo_mnt"
fi

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# ---- workloads ----
# Each workload runs twice per side in the order reference, LocusFS,
# LocusFS, reference (so drift in the disk's state favours neither); a
# figure is the mean of its two runs.
declare -A fig
measure() {   # measure KEY SIDE RUN COMMAND...: store the figure COMMAND prints
    local key=$1 side=$2 run=$3 v
    shift 3
    v=$("$@") || die "$side $key (run $run) failed: $*"
    fig[${side}_${key}_$run]=$v
    say "$side $key run $run = $v"
}
mnt_of() { if [ "$1" = pt ]; then echo "$pt_mnt"; else echo "$lo_mnt"; fi; }
runs() { echo "1:pt 1:locus 2:locus 2:pt"; }

# Warm-up (not reported): the first large write after a mount is slower.
for side in pt locus; do
    "$fsb" seqwrite "$(mnt_of $side)/warmup" 64 >/dev/null || die "$side warm-up write failed"
    rm -f "$(mnt_of $side)/warmup"
done
for rs in $(runs); do
    r=${rs%%:*} side=${rs#*:} m=$(mnt_of "${rs#*:}")
    drop_caches
    measure seqwrite_mib_s "$side" "$r" "$fsb" seqwrite "$m/seq$r" "$mib"
done
for rs in $(runs); do
    r=${rs%%:*} side=${rs#*:} m=$(mnt_of "${rs#*:}")
    drop_caches
    measure seqread_mib_s "$side" "$r" "$fsb" seqread "$m/seq$r"
done
for side in pt locus; do
    rm -f "$(mnt_of $side)"/seq1 "$(mnt_of $side)"/seq2
done
for rs in $(runs); do
    r=${rs%%:*} side=${rs#*:} m=$(mnt_of "${rs#*:}")
    mkdir -p "$m/many$r"
    drop_caches
    measure create_files_s "$side" "$r" "$fsb" create "$m/many$r" "$nfiles" 4096
done
for rs in $(runs); do
    r=${rs%%:*} side=${rs#*:} m=$(mnt_of "${rs#*:}")
    drop_caches
    measure stat_files_s "$side" "$r" "$fsb" stat "$m/many$r" "$nfiles" 4096
done
for rs in $(runs); do
    r=${rs%%:*} side=${rs#*:} m=$(mnt_of "${rs#*:}")
    measure unlink_files_s "$side" "$r" "$fsb" unlink "$m/many$r" "$nfiles"
    rmdir "$m/many$r"
done
for k in seqwrite_mib_s seqread_mib_s create_files_s stat_files_s unlink_files_s; do
    for side in pt locus; do
        fig[${side}_$k]=$(awk -v a="${fig[${side}_${k}_1]}" -v b="${fig[${side}_${k}_2]}" \
            'BEGIN { printf "%.1f\n", (a + b) / 2 }')
    done
done

# ---- report ----
echo "mode=$([ -n "$ptvspt" ] && echo pt-vs-pt || echo locus-vs-pt)"
echo "seq_mib=$mib"
echo "files=$nfiles"
for k in seqwrite_mib_s seqread_mib_s create_files_s stat_files_s unlink_files_s; do
    echo "locus_$k=${fig[locus_$k]}"
    echo "pt_$k=${fig[pt_$k]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f\n", a / b; else print "nan" }'; }
declare -A target=([seqwrite]=0.7 [seqread]=0.8 [create]=0.3 [stat]=0.5)
for k in seqwrite:seqwrite_mib_s seqread:seqread_mib_s create:create_files_s \
         stat:stat_files_s unlink:unlink_files_s; do
    name=${k%%:*}
    key=${k#*:}
    r=$(ratio "${fig[locus_$key]}" "${fig[pt_$key]}")
    echo "${name}_ratio=$r"
    if [ -n "${target[$name]:-}" ]; then
        met=$(awk -v r="$r" -v t="${target[$name]}" 'BEGIN { print (r >= t) ? "yes" : "no" }')
        echo "${name}_target=${target[$name]}"
        echo "${name}_target_met=$met"
    fi
done
