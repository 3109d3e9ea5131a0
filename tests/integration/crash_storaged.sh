#!/usr/bin/env bash
# crash_storaged.sh -- kill -9 locus-storaged while files are being
# written, restart it with `locusctl dev up`, and check that:
#  - every file committed before (fsync + close) is byte-for-byte right;
#  - each file that was being rewritten holds one complete generation:
#    the last one whose close() succeeded or a later complete one, never a
#    mix of two, never garbage; files being created are absent, empty or
#    complete; nothing else appeared;
#  - the mount kept working without a remount (same mount process, same
#    mount, the writer commits again after the restart);
#  - the same holds after dropping the kernel's caches and after a full
#    restart of the cluster (what is on disk, not what a cache remembers).
# Three rounds (CRASH_ROUNDS), each with a fresh writer and directory.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init crash_storaged
find_helper ITOOL itool

rounds=${CRASH_ROUNDS:-3}
sizes=(--min 65536 --max 2097152)       # rewritten/created files
csizes=(--min 1 --max 1000000)          # the committed set
names=(r0000 r0001 r0002 r0003)

committed_at_least() { [ "$(count_lines "$1" O)" -ge "$2" ]; }
writer_mid_file() { [ "$(tail -n 1 "$1" | cut -c1)" = B ]; }

cluster_up
mount_pid=$(pid_of mount)
mid=$(mount_id "$MNT") || fail "no mount id for $MNT"
mkdir -p "$MNT/committed" || fail "mkdir in the mount"
run "$ITOOL" mkfiles "$MNT/committed" f 40 "${csizes[@]}"

for round in $(seq 1 "$rounds"); do
    dir=$MNT/busy$round
    wlog=$WORK/writer$round.log
    mkdir -p "$dir" || fail "mkdir $dir"
    run "$ITOOL" mkfiles "$dir" r ${#names[@]} "${sizes[@]}"
    "$ITOOL" writer "$dir" "$wlog" "${names[@]}" --create c "${sizes[@]}" \
        >"$WORK/writer$round.out" 2>&1 &
    wpid=$!
    track_pid "$wpid"
    wait_for 60 "the writer to commit 3 files" committed_at_least "$wlog" 3
    wait_for 30 "the writer to be in the middle of a file" writer_mid_file "$wlog"

    spid=$(pid_of storaged)
    alive "$spid" || fail "no storaged running (pid '${spid}')"
    log "round $round: kill -9 storaged (pid $spid) during: $(tail -n 1 "$wlog")"
    kill -KILL "$spid"
    wait_for 30 "storaged (pid $spid) to die" dead "$spid"
    ok_before=$(count_lines "$wlog" O)

    cluster_up          # `dev up` restarts what was killed
    spid2=$(pid_of storaged)
    [ "$spid2" != "$spid" ] && alive "$spid2" || fail "storaged did not come back"
    wait_for 120 "the writer to commit 2 more files after the restart" \
        committed_at_least "$wlog" $((ok_before + 2))

    kill -TERM "$wpid"
    wait_for 120 "the writer to finish its file and stop" dead "$wpid"
    wait "$wpid" 2>/dev/null
    cat "$WORK/writer$round.out" >&2
    grep '^F' "$wlog" | head -n 20 >&2

    [ "$(pid_of mount)" = "$mount_pid" ] && alive "$mount_pid" ||
        fail "the mount process changed or died (was $mount_pid, now $(pid_of mount))"
    [ "$(mount_id "$MNT")" = "$mid" ] || fail "$MNT was remounted"
    run "$ITOOL" verify-writer "$dir" "$wlog" "${names[@]}" --create c "${sizes[@]}"
    run "$ITOOL" verify "$MNT/committed" f 40 "${csizes[@]}"
done

verify_all() {
    local round
    run "$ITOOL" verify "$MNT/committed" f 40 "${csizes[@]}"
    for round in $(seq 1 "$rounds"); do
        run "$ITOOL" verify-writer "$MNT/busy$round" "$WORK/writer$round.log" "${names[@]}" \
            --create c "${sizes[@]}"
    done
}
log "again without the kernel's caches"
drop_caches
verify_all
log "again after a full restart"
cluster_down
cluster_up
verify_all
pass
