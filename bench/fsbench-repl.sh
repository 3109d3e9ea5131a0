# shellcheck shell=bash disable=SC2154
# fsbench-repl.sh -- the replicated mode of bench/fsbench.sh (--sites N
# --copies K), sourced by it after the build; not a command of its own.
# What it measures and prints: the header of bench/fsbench.sh, "Replicated
# mode"; the figures and how to read them: docs/bench.md.
#
# Uses from fsbench.sh: repo, locusctl, nsites, ncopies, rounds, quick,
# yard, say, die, is_mounted.  Owns everything under build/fsbench.<pid>/
# and removes it in its EXIT trap (the two clusters stopped with `locusctl
# dev down`, the passthrough mount with the yardstick's passthrough-down.sh).

if [ -z "$yard" ]; then
    for d in "$repo/../shared/bench" "$repo/../../shared/bench"; do
        if [ -f "$d/fsbench.sh" ]; then
            yard=$d
            break
        fi
    done
fi
[ -n "$yard" ] && [ -f "$yard/fsbench.sh" ] && [ -f "$yard/passthrough-up.sh" ] ||
    die "no yardstick (fsbench.sh, passthrough-up.sh): give --yardstick DIR"
yard=$(cd "$yard" && pwd -P)

scratch=$repo/build/fsbench.$$
keep=$repo/build/fsbench-fail.$$
l1_mnt=$scratch/l1-mnt
l1_state=$scratch/l1-state
rn_mnt=$scratch/rn-mnt
rn_state=$scratch/rn-state
pt_mnt=$scratch/pt-mnt
clusters=()          # "MNT STATE" of each cluster started
pt_up=
yard_pid=
failed=

cleanup() {
    local rc=$? c m st f pid
    trap - EXIT INT TERM
    set +e
    if [ -n "$yard_pid" ] && kill -0 "$yard_pid" 2>/dev/null; then
        kill -CONT -- "-$yard_pid" 2>/dev/null
        kill -TERM -- "-$yard_pid" 2>/dev/null
        wait "$yard_pid" 2>/dev/null
    fi
    [ -z "$pt_up" ] || "$yard/passthrough-down.sh" "$pt_mnt" >&2
    if [ -n "$failed" ]; then
        mkdir -p "$keep"
        for c in "${clusters[@]}"; do
            st=${c#* }
            mkdir -p "$keep/${st##*/}"
            (cd "$st" && find . -name '*.log' -exec cp --parents {} "$keep/${st##*/}/" \;)
        done
        cp "$scratch"/*.err "$keep/" 2>/dev/null
        say "logs kept in $keep"
    fi
    for c in "${clusters[@]}"; do
        m=${c%% *} st=${c#* }
        timeout 120 "$locusctl" dev down "$m" --state "$st" >&2 2>&1 ||
            say "locusctl dev down $m failed"
        for f in "$st"/run/*.pid "$st"/site*/run/*.pid; do
            [ -f "$f" ] || continue
            pid=$(tr -dc '0-9' <"$f")
            case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
                *locus*) say "still running: $f ($pid)"; kill -KILL "$pid" ;;
            esac
        done
    done
    rm -rf --one-file-system "$scratch"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

mkdir -p "$scratch/pt-src" "$pt_mnt" "$l1_mnt" "$rn_mnt"

# ---- the four targets ----
fgcreate() {   # fgcreate STATE NAME COPIES SITES: a file group at /NAME
    "$locusctl" fg create "$2" --mount "/$2" --copies "$3" --sites "$4" \
        --state "$1" --timeout 60 >&2 || die "locusctl fg create $2 failed (logs: $1/**/log)"
}
wait_dir() {   # wait_dir DIR: the mount shows the file group's root there
    local deadline=$(( $(date +%s) + 30 ))
    until [ -d "$1" ] && timeout 10 "$locusctl" copies "${1#"$2"}" --state "$3" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$1: the file group is not visible after 30 s"
        sleep 0.2
    done
}
PT_OPTS=writeback,cache=auto "$yard/passthrough-up.sh" "$pt_mnt" "$scratch/pt-src" >&2 ||
    die "passthrough-up.sh failed"
pt_up=1
clusters+=("$l1_mnt $l1_state")
timeout 180 "$locusctl" dev up "$l1_mnt" --state "$l1_state" >&2 ||
    die "locusctl dev up (one site) failed"
fgcreate "$l1_state" b1 1 1
clusters+=("$rn_mnt $rn_state")
timeout 300 "$locusctl" dev up "$rn_mnt" --sites "$nsites" --state "$rn_state" --timeout 120 >&2 ||
    die "locusctl dev up --sites $nsites failed"
all=$(seq -s, 1 "$nsites")
fgcreate "$rn_state" r1 1 1
fgcreate "$rn_state" "r$ncopies" "$ncopies" "$all"

declare -A dir_of=([pt]=$pt_mnt [l1]=$l1_mnt/b1 [r1]=$rn_mnt/s1/r1 [rK]=$rn_mnt/s1/r$ncopies)
declare -A state_of=([l1]=$l1_state [r1]=$rn_state [rK]=$rn_state)
declare -A root_of=([l1]=$l1_mnt [r1]=$rn_mnt/s1 [rK]=$rn_mnt/s1)
for t in l1 r1 rK; do
    wait_dir "${dir_of[$t]}" "${root_of[$t]}" "${state_of[$t]}"
done
"$locusctl" fg list --state "$rn_state" >&2

# ---- one run of the yardstick on one target ----
# A phase that writes is followed by a pause of the yardstick and a timed
# `locusctl sync` (LocusFS targets): the copies have caught up before the
# next phase starts, and the time is that phase's replication lag.
declare -A fig                 # fig[TARGET/NAME/ROUND] = value
declare -A unit_of
names=()                       # figure names in the yardstick's order
lagnames=()
lag_after() {   # lag_after FIGURE: the lag key measured after FIGURE, or nothing
    case "$1" in
        seqwrite_1m) echo lag_seqwrite ;;
        randwrite_4k) echo lag_randwrite ;;
        md_rmdir) echo lag_mdbench ;;
        untar+sync) echo lag_untar ;;
        rm_rf) echo lag_rm_rf ;;
    esac
}
# After the sync that follows seqwrite_1m and untar+sync on the K-copy
# group (the yardstick still paused), `locusctl copies` compares the copies
# of the file / the tree, byte for byte: equal data, not only a quiet sync.
declare -A copies_ok           # copies_ok[WHAT/ROUND] = yes | no
check_copies() {   # check_copies FIGURE ROUND
    local what path out
    case "$1" in
        seqwrite_1m) what=seq.dat path=seq.dat ;;
        untar+sync) what=untar path="untar --tree" ;;
        *) return 0 ;;
    esac
    # the yardstick works in TARGET/fsbench.<its pid>; setsid ran it as $yard_pid
    # shellcheck disable=SC2086
    if out=$(timeout 600 "$locusctl" copies "/r$ncopies/fsbench.$yard_pid/"$path \
            --state "$rn_state" 2>&1); then
        copies_ok[$what/$2]=yes
    else
        copies_ok[$what/$2]=no
        failed=1
        say "  rK/$2: the copies of $what differ after sync:"
        head -n 20 <<<"$out" >&2
    fi
    say "  rK/$2 copies of $what equal: ${copies_ok[$what/$2]}"
}
# Pausing the yardstick must not interrupt a system call on the mount: a
# stop signal makes the kernel send FUSE_INTERRUPT, and locusfs-mount fails
# a request it has not sent yet with EINTR (seen: mdbench's last rmdir).
# So the pause waits for the sleep of the yardstick's settle() (sync; sleep
# 2; sync; drop caches), which follows every phase lag_after names but
# rm_rf, the last one: there the yardstick is left to exit.
pause_yardstick() {   # 0 once stopped in its settle, 1 if it ended first
    local deadline=$(( $(date +%s) + 600 ))
    until pgrep -P "$yard_pid" -x sleep >/dev/null; do
        kill -0 "$yard_pid" 2>/dev/null || return 1
        [ "$(date +%s)" -lt "$deadline" ] || die "the yardstick did not reach its settle in 600 s"
        sleep 0.01
    done
    kill -STOP -- "-$yard_pid"
}
measure_lag() {   # measure_lag TARGET ROUND FIGURE LAG: LAG = how long `locusctl sync` takes
    local t=$1 r=$2 name=$3 lag=$4 t0 t1 rc=0 out paused=
    [[ " ${lagnames[*]} " == *" $lag "* ]] || lagnames+=("$lag")
    if pause_yardstick; then
        paused=1
    fi
    t0=$(date +%s.%N)
    out=$("$locusctl" sync --state "${state_of[$t]}" --timeout 900 2>&1) || rc=$?
    t1=$(date +%s.%N)
    if [ "$rc" -eq 0 ]; then
        fig[$t/$lag/$r]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    else
        fig[$t/$lag/$r]=NA
        failed=1
        say "  $t/$r: locusctl sync after $name failed: $out"
    fi
    say "  $t/$r $lag ${fig[$t/$lag/$r]} s"
    if [ "$t" = rK ] && [ -n "$paused" ]; then
        check_copies "$name" "$r"
    fi
    [ -z "$paused" ] || kill -CONT -- "-$yard_pid"
}
run_one() {   # run_one TARGET ROUND
    local t=$1 r=$2 line name val unit lag rc
    local fifo=$scratch/yard.fifo err=$scratch/$t.$r.err
    rm -f "$fifo"
    mkfifo "$fifo"
    say "round $r: $t (${dir_of[$t]}), load $(cut -d' ' -f1-3 /proc/loadavg)"
    FSBENCH_OWN="$scratch" setsid "$yard/fsbench.sh" "${dir_of[$t]}" ${quick:+--quick} \
        >"$fifo" 2>"$err" </dev/null &
    yard_pid=$!
    exec 3<"$fifo"
    while IFS= read -r -u 3 line; do
        case "$line" in
            "#"*) say "  $t/$r $line"; continue ;;
        esac
        read -r name val unit <<<"$line"
        [ -n "$name" ] || continue
        say "  $t/$r $name $val ${unit:-}"
        [[ " ${names[*]} " == *" $name "* ]] || names+=("$name")
        unit_of[$name]=${unit:-}
        fig[$t/$name/$r]=$val
        if [ "$val" = NA ]; then
            failed=1
            say "  $t/$r: phase $name FAILED; the yardstick's stderr:"
            tail -n 20 "$err" >&2
        fi
        lag=$(lag_after "$name")
        if [ -n "$lag" ] && [ "$t" != pt ]; then
            measure_lag "$t" "$r" "$name" "$lag"
        fi
    done
    exec 3<&-
    rc=0
    wait "$yard_pid" || rc=$?
    yard_pid=
    if [ "$rc" -ne 0 ]; then
        failed=1
        say "  $t/$r: the yardstick exited $rc; its stderr:"
        tail -n 30 "$err" >&2
    fi
}

# ---- the table ----
median() {   # median V...: of the numeric ones ("NA" when none)
    printf '%s\n' "$@" | awk '$1 ~ /^[0-9.]+$/' | sort -g |
        awk '{ v[NR] = $1 } END { if (!NR) print "NA"; else if (NR % 2) print v[(NR + 1) / 2];
              else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() {   # med TARGET NAME
    local r vs=()
    for r in $(seq 1 "$done_rounds"); do
        vs+=("${fig[$1/$2/$r]:-NA}")
    done
    median "${vs[@]}"
}
speed() {   # speed A B UNIT: A/B as a speed ratio (B/A for times)
    awk -v a="$1" -v b="$2" -v u="$3" 'BEGIN {
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || a == 0 || b == 0) { print "-"; exit }
        printf "%.2f\n", (u == "s") ? b / a : a / b }'
}
fmt() {   # fmt V: thousands separated; 2 decimals below 10, 1 below 100
    awk -v v="$1" 'BEGIN {
        if (v !~ /^[0-9.]+$/) { print v; exit }
        s = (v < 10) ? sprintf("%.2f", v) : (v < 100) ? sprintf("%.1f", v) : sprintf("%.0f", v)
        if (v >= 100) while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
        sub(/,$/, "", s); gsub(/,,/, ",", s); print s }'
}
# issue #8's GlusterFS figures are of the full-size yardstick: none for --quick
declare -A gluster=([md_create]=430 [md_write4k]=336 [untar]=45 [seqwrite_1m]=117)
[ -z "$quick" ] || gluster=()
declare -A gtarget=([md_create]=10 [md_write4k]=10 [untar]=10 [seqwrite_1m]=2)
K=$ncopies
print_table() {   # the medians of rounds 1..done_rounds, on stdout
    echo "LocusFS replication benchmark: $date0 to $(date -u +%FT%TZ), $(hostname), $(nproc) cores,"
    echo "load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) now;" \
         "$done_rounds of $rounds round(s), medians;"
    echo "yardstick $yard/fsbench.sh${quick:+ --quick}; $nsites sites, $K copies."
    echo
    echo "| figure | unit | passthrough | 1 site | $nsites sites 1 copy | $nsites sites $K copies" \
         "| ${K}c / 1c | 1 site / pt | ${K}c / pt | GlusterFS r3 | ${K}c / GlusterFS (target) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local n u p a b c g gr r
    for n in "${names[@]}"; do
        u=${unit_of[$n]}
        p=$(med pt "$n") a=$(med l1 "$n") b=$(med r1 "$n") c=$(med rK "$n")
        g=${gluster[$n]:-} gr=-
        if [ -n "$g" ]; then
            gr="$(speed "$c" "$g" "$u") (>= ${gtarget[$n]})"
        fi
        echo "| $n | $u | $(fmt "$p") | $(fmt "$a") | $(fmt "$b") | $(fmt "$c") | $(speed "$c" "$b" "$u")" \
             "| $(speed "$a" "$p" "$u") | $(speed "$c" "$p" "$u") | ${g:--} | $gr |"
    done
    for n in "${lagnames[@]}"; do
        a=$(med l1 "$n") b=$(med r1 "$n") c=$(med rK "$n")
        echo "| $n (locusctl sync) | s | - | $(fmt "$a") | $(fmt "$b") | $(fmt "$c") | - | - | - | - | - |"
    done
    echo
    echo "Speed ratios (higher is better; for times the inverse ratio of the times)."
    echo "lag_*: seconds \`locusctl sync\` took after that phase (the yardstick paused in"
    echo "its settle); on the 1-copy targets, what sync costs with nothing to pull."
    for r in $(seq 1 "$done_rounds"); do
        echo "Copies of the ${K}-copy group compared after the sync (locusctl copies), round $r:" \
             "seq.dat ${copies_ok[seq.dat/$r]:-not checked}, untar tree ${copies_ok[untar/$r]:-not checked}."
    done
    echo
}

# ---- the rounds; the table after each (a cut-short run still reports) ----
order=(pt l1 r1 rK)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
date0=$(date -u +%FT%TZ)
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        seq_of_round="${order[*]}"
    else
        seq_of_round="${order[3]} ${order[2]} ${order[1]} ${order[0]}"
    fi
    for t in $seq_of_round; do
        run_one "$t" "$r"
    done
    done_rounds=$r
    print_table
done
[ -z "$failed" ] || exit 1
exit 0
