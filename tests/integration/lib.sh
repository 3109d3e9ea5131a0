# lib.sh -- common code for the LocusFS integration tests (sourced, not run).
#
# A test does:
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     lib_init NAME            # skips (77) if the machine cannot run it
#     cluster_up               # locusctl dev up $MNT --state $STATE
#     ... test ...
#     pass                     # or fail "why"
#
# What lib_init gives a test:
#   WORK     a private work dir under ${TMPDIR:-/tmp} (mode 0755 so the
#            unprivileged user of posix_ops can reach the mount inside it)
#   STATE    $WORK/state  the cluster's state directory
#   MNT      $WORK/mnt    where the cluster is mounted
#   LOCUSCTL $LOCUSCTL, or $MESON_BUILD_ROOT/ctl/locusctl
#   ITOOL, POSIX_OPS, MODEL_TEST, BADINPUT: the C helpers (from the
#            environment meson sets, or $MESON_BUILD_ROOT/tests/integration/)
#
# Clusters of several sites (locusctl dev up --sites N): site k's run and
# log files are in $STATE/site<k>/{run,log} and its mount is $MNT/s<k>;
# site_pid K NAME and site_port K NAME read them.  net_cut "A1 A2" "B1"
# drops every packet between the two address sets (an nftables table of
# this test's own, deleted by net_heal and at exit); see net_cut.
#
# Cleanup (EXIT trap, also on failure, SIGINT, SIGTERM from meson's
# timeout): kill the helpers the test started (track_pid), `locusctl dev
# down` (bounded), then every daemon still alive whose pid is in
# $STATE/run/*.pid (only if that pid still runs one of our programs), lazy
# unmounts of every mount the test made, and removal of $WORK.  On failure
# the daemons' logs ($STATE/log/*) are printed first.
#
# Waiting: wait_for SECONDS DESCRIPTION COMMAND... polls COMMAND (every
# 50 ms) until it succeeds or the deadline passes; the test then fails
# naming DESCRIPTION.  No test sleeps "to give something time".

set -u
set -o pipefail

LIB_NAME=
LIB_PIDS=()             # helper processes to kill at exit
LIB_MOUNTS=()           # mount points to unmount at exit
LIB_DONE=               # set by pass/fail so cleanup knows the verdict
LIB_KEEP=${LOCUS_TEST_KEEP:-}   # non-empty: keep $WORK on failure

log() { printf '%s: %s\n' "${LIB_NAME:-test}" "$*" >&2; }

skip() {
    echo "SKIP: $*"
    LIB_DONE=skip
    exit 77
}

LIB_WHY=                # the reason fail() gave, said again after the logs
fail() {
    log "FAIL: $*"
    LIB_WHY=$*
    LIB_DONE=fail
    exit 1
}

pass() {
    log "PASS"
    LIB_DONE=pass
    exit 0
}

# Run a command, failing the test if it fails; its output goes to stderr.
run() {
    log "+ $*"
    "$@" >&2 || fail "command failed (exit $?): $*"
}

now_ms() { date +%s%3N; }

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$(( $(now_ms) + secs * 1000 ))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            fail "timed out after ${secs}s waiting for: $what"
        fi
        sleep 0.05
    done
}

# is_mounted DIR: DIR is a mount point of a FUSE file system right now.
is_mounted() {
    local dir
    dir=$(readlink -f "$1") || return 1
    awk -v d="$dir" '$5 == d && $0 ~ / - fuse/ { found = 1 } END { exit !found }' \
        /proc/self/mountinfo
}

# mount_id DIR: the mount id (first field of mountinfo) of the mount at DIR.
mount_id() {
    local dir
    dir=$(readlink -f "$1") || return 1
    awk -v d="$dir" '$5 == d { id = $1 } END { if (id == "") exit 1; print id }' \
        /proc/self/mountinfo
}

# alive PID: PID runs (a zombie, reaped by nobody yet, counts as dead).
alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$state" != X ]
}
dead() { ! alive "$1"; }

# pid_of NAME: the pid in $STATE/run/NAME.pid (empty if none).
pid_of() {
    local f=$STATE/run/$1.pid
    [ -s "$f" ] && tr -dc '0-9' <"$f"
}

port_of() {
    local f=$STATE/run/$1.port
    [ -s "$f" ] && tr -dc '0-9' <"$f"
}

# site_pid K NAME / site_port K NAME: the same for site K of a cluster of
# several sites (the one locus-cssd is site 1's).
site_pid() {
    local f=$STATE/site$1/run/$2.pid
    [ -s "$f" ] && tr -dc '0-9' <"$f"
}
site_port() {
    local f=$STATE/site$1/run/$2.port
    [ -s "$f" ] && tr -dc '0-9' <"$f"
}

# net_cut "A1 A2 ..." "B1 ..." [PORT]: drop every packet between an address
# of the first set and one of the second, both ways (a network partition
# between the sites on those addresses; issue #9); with PORT, only those
# of connections to PORT on a B address (one daemon of a site cut off).  The rules live in an
# nftables table of this test's own (LIB_NFT_TABLE, named after the test's
# pid so that tests running side by side never touch each other's rules);
# net_heal and the exit trap delete that table and nothing else.  Skips
# the test (77) when nft is missing or the kernel refuses.
LIB_NFT_TABLE=
net_cut() {
    local a b
    command -v nft >/dev/null || skip "nft is not installed (package nftables, scripts/deps.sh)"
    a=$(echo "$1" | tr ' ' ',')
    b=$(echo "$2" | tr ' ' ',')
    if [ -z "$LIB_NFT_TABLE" ]; then
        LIB_NFT_TABLE=locus_test_$$
        nft add table inet "$LIB_NFT_TABLE" 2>/dev/null ||
            skip "nftables refuses to add a table here (no CAP_NET_ADMIN?)"
        nft add chain inet "$LIB_NFT_TABLE" out \
            '{ type filter hook output priority 0; policy accept; }' ||
            fail "nft: cannot add a chain to $LIB_NFT_TABLE"
    fi
    if [ -n "${3:-}" ]; then
        log "+ net_cut {$a} <-> {$b} port $3"
        nft add rule inet "$LIB_NFT_TABLE" out ip saddr "{ $a }" ip daddr "{ $b }" tcp dport "$3" drop &&
            nft add rule inet "$LIB_NFT_TABLE" out ip saddr "{ $b }" tcp sport "$3" ip daddr "{ $a }" drop ||
            fail "nft: cannot add the rules of net_cut $1 / $2 / $3"
        return 0
    fi
    log "+ net_cut {$a} <-> {$b}"
    nft add rule inet "$LIB_NFT_TABLE" out ip saddr "{ $a }" ip daddr "{ $b }" drop &&
        nft add rule inet "$LIB_NFT_TABLE" out ip saddr "{ $b }" ip daddr "{ $a }" drop ||
        fail "nft: cannot add the rules of net_cut $1 / $2"
}

# net_heal: remove every cut this test made.
net_heal() {
    [ -n "$LIB_NFT_TABLE" ] || return 0
    log "+ net_heal"
    nft delete table inet "$LIB_NFT_TABLE" 2>/dev/null || log "nft: cannot delete table $LIB_NFT_TABLE"
    LIB_NFT_TABLE=
}

# ours PID: the process runs one of the programs a cluster is made of.
ours() {
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
    case "$exe" in
        *locus-storaged*|*locus-cssd*|*locusfs-mount*|*locusctl*) return 0 ;;
        "$WORK"/*|"${MESON_BUILD_ROOT:-/nonexistent}"/*) return 0 ;;
    esac
    return 1
}

# track_pid PID: kill PID (and wait for it) at exit.
track_pid() { LIB_PIDS+=("$1"); }
track_mount() { LIB_MOUNTS+=("$1"); }

# stop_pid PID [SECONDS]: TERM, wait up to SECONDS (default 10), then KILL.
stop_pid() {
    local pid=$1 secs=${2:-10} deadline
    alive "$pid" || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(( $(now_ms) + secs * 1000 ))
    while alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    if alive "$pid"; then
        log "pid $pid ignored SIGTERM for ${secs}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

dump_logs() {
    local f
    [ -d "${STATE:-}" ] || return 0
    for f in "$STATE"/log/* "$STATE"/site*/log/*; do
        [ -f "$f" ] || continue
        echo "======== $f (last 200 lines)" >&2
        tail -n 200 "$f" >&2
    done
    for f in "$WORK"/*.log; do
        [ -f "$f" ] || continue
        echo "======== $f (last 50 lines)" >&2
        tail -n 50 "$f" >&2
    done
}

# The work of cleaning up; safe to run twice.
lib_teardown() {
    local rc=$1 pid f m
    net_heal
    for pid in "${LIB_PIDS[@]}"; do
        stop_pid "$pid" 10
    done
    # The test's own extra mounts are clients of the cluster: before it goes.
    for m in "${LIB_MOUNTS[@]}"; do
        [ -n "$m" ] || continue
        if is_mounted "$m"; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null ||
                umount -l "$m" 2>/dev/null
        fi
    done
    if [ -n "${STATE:-}" ] && [ -d "$STATE" ] && [ -x "${LOCUSCTL:-}" ]; then
        # Continue anything a test stopped (SIGSTOP) so it can exit.
        for f in "$STATE"/run/*.pid "$STATE"/site*/run/*.pid; do
            [ -f "$f" ] || continue
            pid=$(tr -dc '0-9' <"$f")
            [ -n "$pid" ] && ours "$pid" && kill -CONT "$pid" 2>/dev/null
        done
        timeout 60 "$LOCUSCTL" dev down "$MNT" --state "$STATE" >&2 2>&1 ||
            log "locusctl dev down failed (exit $?)"
        for f in "$STATE"/run/*.pid "$STATE"/site*/run/*.pid; do
            [ -f "$f" ] || continue
            pid=$(tr -dc '0-9' <"$f")
            if [ -n "$pid" ] && alive "$pid" && ours "$pid"; then
                log "still running after dev down: $(basename "$f" .pid) pid $pid"
                stop_pid "$pid" 10
            fi
        done
    fi
    for m in "${LIB_MOUNTS[@]}" "${MNT:-}" "${MNT:-/nonexistent}"/s*; do
        [ -n "$m" ] || continue
        if is_mounted "$m"; then
            log "still mounted: $m (lazy unmount)"
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        fi
    done
    if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
        if [ -n "$LIB_KEEP" ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
            log "keeping $WORK (LOCUS_TEST_KEEP)"
        else
            # --one-file-system: never descend into a mount that did not go.
            rm -rf --one-file-system "$WORK"
        fi
    fi
}

# EXIT trap.
lib_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
        [ -n "$LIB_DONE" ] || log "FAIL: exit status $rc"
        dump_logs
    fi
    lib_teardown "$rc"
    # Last, so that it survives meson's cut of a long log to its end.
    [ -z "$LIB_WHY" ] || log "FAIL (said again after the logs): $LIB_WHY"
    exit "$rc"
}

# SIGTERM/SIGINT (meson's timeout, ^C): meson kills the whole process
# group half a second after SIGTERM unless the test has exited, so hand
# the teardown to a detached process in its own session and exit at once.
lib_on_signal() {
    local sig=$1
    trap - EXIT INT TERM
    set +e
    log "FAIL: got SIG$sig; cleaning up in the background"
    dump_logs
    LIB_T_PIDS="${LIB_PIDS[*]}" LIB_T_MOUNTS="${LIB_MOUNTS[*]}" LIB_T_NFT=$LIB_NFT_TABLE \
    WORK=${WORK:-} STATE=${STATE:-} MNT=${MNT:-} LOCUSCTL=${LOCUSCTL:-} \
    LIB_NAME=$LIB_NAME LIB_SRC=${BASH_SOURCE[0]} \
        setsid -f bash -c '. "$LIB_SRC"; LIB_NFT_TABLE=$LIB_T_NFT; read -r -a LIB_PIDS <<<"$LIB_T_PIDS";
                           read -r -a LIB_MOUNTS <<<"$LIB_T_MOUNTS"; lib_teardown 1' \
        </dev/null >/dev/null 2>&1
    [ "$sig" = INT ] && exit 130
    exit 143
}

# find_helper VAR NAME: set VAR to the helper program NAME.
find_helper() {
    local var=$1 name=$2 val=${!1:-}
    if [ -z "$val" ] && [ -n "${MESON_BUILD_ROOT:-}" ]; then
        val=$MESON_BUILD_ROOT/tests/integration/$name
    fi
    [ -n "$val" ] && [ -x "$val" ] || fail "helper $name not found (set $var or MESON_BUILD_ROOT)"
    printf -v "$var" '%s' "$val"
}

lib_init() {
    LIB_NAME=$1
    local src_root

    [ "$(id -u)" -eq 0 ] || skip "needs root (FUSE mounts with allow_other, unprivileged checks)"
    [ -c /dev/fuse ] || skip "no /dev/fuse on this machine"
    command -v fusermount3 >/dev/null || skip "fusermount3 is not installed (package fuse3)"

    if [ -z "${LOCUSCTL:-}" ] && [ -n "${MESON_BUILD_ROOT:-}" ]; then
        LOCUSCTL=$MESON_BUILD_ROOT/ctl/locusctl
    fi
    src_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if [ -z "${LOCUSCTL:-}" ] || [ ! -x "$LOCUSCTL" ]; then
        # Until ctl/ exists in the tree there is nothing to test; once it
        # does, a missing locusctl is a build failure, not a skip.
        [ -f "$src_root/ctl/meson.build" ] &&
            fail "locusctl not found at ${LOCUSCTL:-(unset)} although ctl/ exists"
        skip "locusctl is not built yet (no ctl/ in this tree)"
    fi

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/locus-it-$LIB_NAME.XXXXXX") || fail "mktemp failed"
    chmod 0755 "$WORK"
    STATE=$WORK/state
    MNT=$WORK/mnt
    mkdir -p "$MNT"
    export LOCUS_STATE_DIR=$STATE
    trap lib_cleanup EXIT
    trap 'lib_on_signal TERM' TERM
    trap 'lib_on_signal INT' INT
    log "work dir $WORK"
}

# cluster_up [ARGS...]: start (or restart) the cluster and wait until the
# mount answers.
cluster_up() {
    local rc=0
    log "+ locusctl dev up $MNT --state $STATE $*"
    timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" "$@" >&2 || rc=$?
    [ "$rc" -eq 0 ] || fail "locusctl dev up failed (exit $rc)"
    wait_for 60 "the mount at $MNT" is_mounted "$MNT"
    wait_for 60 "the mount at $MNT to answer" stat "$MNT/."
}

# sites_up N [ARGS...]: start (or restart what is down of) a cluster of N
# sites (ARGS for dev up, e.g. --addrs A,B) and wait until the mount of
# every site (MNT/s1 .. MNT/sN) answers.
sites_up() {
    local rc=0 k
    log "+ locusctl dev up $MNT --state $STATE --sites $*"
    timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE" --sites "$@" >&2 || rc=$?
    [ "$rc" -eq 0 ] || fail "locusctl dev up --sites $1 failed (exit $rc)"
    for k in $(seq 1 "$1"); do
        wait_for 60 "the mount of site $k" is_mounted "$MNT/s$k"
        wait_for 60 "the mount of site $k to answer" stat "$MNT/s$k/."
    done
}

cluster_down() {
    local rc=0
    log "+ locusctl dev down $MNT --state $STATE"
    timeout 120 "$LOCUSCTL" dev down "$MNT" --state "$STATE" >&2 || rc=$?
    [ "$rc" -eq 0 ] || fail "locusctl dev down failed (exit $rc)"
    wait_for 30 "$MNT to be unmounted" eval '! is_mounted "$MNT"'
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches || log "cannot drop caches (continuing)"
}

# The number of lines of FILE that start with PREFIX.
count_lines() {
    local n
    n=$(grep -c "^$2" "$1" 2>/dev/null) || true
    echo "${n:-0}"
}

# wrap_daemons "PROG..." ARGS...: from now on `locusctl dev up` starts each
# PROG (storage/locus-storaged, css/locus-cssd, fused/locusfs-mount) with
# ARGS appended, the others as an earlier call left them (or as they are):
# wrappers and links in $WORK/bin, found through LOCUS_BIN_DIR.
wrap_daemons() {
    local bin=$WORK/bin progs=$1 p
    shift
    mkdir -p "$bin" || fail "mkdir $bin"
    for p in storage/locus-storaged css/locus-cssd fused/locusfs-mount; do
        case " $progs " in
            *" $p "*)
                rm -f "$bin/${p#*/}"
                { printf '#!/bin/sh\nexec %q "$@"' "$MESON_BUILD_ROOT/$p"; printf ' %q' "$@"; echo; } \
                    >"$bin/${p#*/}" || fail "cannot write a wrapper in $bin"
                chmod +x "$bin/${p#*/}" ;;
            *) [ -e "$bin/${p#*/}" ] || ln -sf "$MESON_BUILD_ROOT/$p" "$bin/${p#*/}" || fail "ln in $bin" ;;
        esac
    done
    export LOCUS_BIN_DIR=$bin
}

# daemons_with ARGS...: both daemons get ARGS (e.g. --lease-ms 2000).
daemons_with() { wrap_daemons "storage/locus-storaged css/locus-cssd" "$@"; }

# mount_more DIR [OPTS [ARGS...]]: a second locusfs-mount of the running
# cluster at DIR (log $WORK/mount-NAME.log), tracked for cleanup; its pid
# in MORE_PID.  OPTS are added to its -o options (bind=127.0.0.2,site=2,
# attr_timeout=60), ARGS to its command line (--log-level debug).  In a
# cluster of several sites it uses site 1's CSS (at site 1's address, the
# first line of STATE/sites), like every mount.
mount_more() {
    local dir=$1 opts=${2:-} portf=$STATE/run/cssd.port host=127.0.0.1
    shift
    [ $# -gt 0 ] && shift
    [ -s "$STATE/site1/run/cssd.port" ] && portf=$STATE/site1/run/cssd.port
    [ -s "$STATE/sites" ] && host=$(head -n 1 "$STATE/sites")
    mkdir -p "$dir" || fail "mkdir $dir"
    "$MESON_BUILD_ROOT/fused/locusfs-mount" "$dir" -f \
        -o "key=$STATE/cluster.key,css=$host:$(tr -dc 0-9 <"$portf"),css_port_file=$portf${opts:+,$opts}" \
        "$@" >"$WORK/mount-$(basename "$dir").log" 2>&1 &
    MORE_PID=$!
    track_pid "$MORE_PID"
    track_mount "$dir"
    wait_for 30 "the mount at $dir" is_mounted "$dir"
    wait_for 30 "the mount at $dir to answer" stat "$dir/."
}

# no_sanitizer_report WHEN [FILE...]: fail, showing the report, if a
# daemon's or mount's log (STATE's, of every site, and FILEs) has one (an
# AddressSanitizer build: MESON_BUILD_ROOT=build-asan).
no_sanitizer_report() {
    local f when=$1
    shift
    for f in "$STATE"/log/* "$STATE"/site*/log/* "$@"; do
        [ -f "$f" ] || continue
        if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
            log "sanitizer report in $f:"
            grep -m1 -A150 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" >&2
            fail "$when: a sanitizer report in $(basename "$f")"
        fi
    done
}

# ---- helpers of the replication tests (repair.sh, policy.sh) ----
# registered K: site K's storaged is registered as a holder of the root group.
registered() {
    local out
    out=$("$LOCUSCTL" fg list --json --state "$STATE" 2>/dev/null | tr -d ' \n') || return 1
    grep -q "\"site\":$1,\"host\":\"[^\"]*\",\"port\":[1-9][0-9]*,\"registered\":true" <<<"$out"
}
# damage DIR TEXT: overwrite 16 bytes where TEXT starts in the one segment
# file of container DIR holding it, which must not be the newest.
damage() {
    local segs newest off
    mapfile -t segs < <(grep -rlaF "$2" "$1/segments" | sort)
    [ "${#segs[@]}" -eq 1 ] || fail "'$2' is in ${#segs[@]} segment files of $1, expected one: ${segs[*]}"
    newest=$(ls "$1/segments" | sort | tail -n 1)
    [ "${segs[0]}" != "$1/segments/$newest" ] ||
        fail "'$2' is in the newest segment ${segs[0]}: the test needs it in an older one"
    off=$(grep -obaF "$2" "${segs[0]}" | head -n 1 | cut -d: -f1)
    [ -n "$off" ] || fail "cannot find '$2' in ${segs[0]}"
    log "+ damage 16 bytes at offset $off of ${segs[0]}"
    printf 'XXXXXXXXXXXXXXXX' | dd of="${segs[0]}" bs=1 seek="$off" conv=notrunc status=none || fail "dd"
}
# kill_ss K: kill -9 site K's storaged and wait until it is gone.
kill_ss() {
    local pid
    pid=$(site_pid "$1" storaged) || fail "no pid of site $1's storaged"
    log "+ kill -9 site $1's storaged ($pid)"
    kill -9 "$pid"
    wait_for 30 "site $1's storaged to be gone" dead "$pid"
}
# root_primary_is K: the mount table names site K the primary of the root group.
root_primary_is() {
    local out
    out=$("$LOCUSCTL" fg list --json --state "$STATE" 2>/dev/null | tr -d ' \n') || return 1
    grep -q "\"fg\":1,[^}]*\"primary\":$1," <<<"$out"
}
# small_segments BYTES: the storage daemons run with segments of BYTES, so a
# test can damage an older segment.
small_segments() { wrap_daemons storage/locus-storaged --segment-size "$1"; }
