#!/usr/bin/env bash
# crash_mount.sh -- kill -9 the mount process (locusfs-mount) while files
# are being written, then `locusctl dev up` mounts again, and check that:
#  - every file committed before (fsync + close) is byte-for-byte right;
#  - each file that was being rewritten holds one complete generation:
#    the last one whose close() succeeded or a later complete one, never
#    the half-written one the dead mount had staged; files being created
#    are absent, empty or complete; nothing else appeared;
#  - the daemons did not notice beyond the lost client (same pids);
#  - the same holds after dropping the kernel's caches and after a full
#    restart of the cluster (a storage site must not commit a dead
#    client's session on shutdown either).
# Three rounds (CRASH_ROUNDS), each with a fresh writer and directory.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init crash_mount
find_helper ITOOL itool

rounds=${CRASH_ROUNDS:-3}
sizes=(--min 65536 --max 2097152)
csizes=(--min 1 --max 1000000)
names=(r0000 r0001 r0002 r0003)

committed_at_least() { [ "$(count_lines "$1" O)" -ge "$2" ]; }
writer_mid_file() { [ "$(tail -n 1 "$1" | cut -c1)" = B ]; }

cluster_up
spid=$(pid_of storaged)
cpid=$(pid_of cssd)
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

    mpid=$(pid_of mount)
    alive "$mpid" || fail "no mount process running (pid '${mpid}')"
    log "round $round: kill -9 the mount (pid $mpid) during: $(tail -n 1 "$wlog")"
    kill -KILL "$mpid"
    wait_for 30 "the mount process (pid $mpid) to die" dead "$mpid"

    # The writer's calls now fail (ENOTCONN); it stops between files.
    kill -TERM "$wpid"
    wait_for 60 "the writer to stop" dead "$wpid"
    wait "$wpid" 2>/dev/null
    cat "$WORK/writer$round.out" >&2

    cluster_up          # `dev up` mounts again over the dead mount
    mpid2=$(pid_of mount)
    [ "$mpid2" != "$mpid" ] && alive "$mpid2" || fail "no new mount process"
    [ "$(pid_of storaged)" = "$spid" ] && alive "$spid" || fail "storaged changed or died"
    [ "$(pid_of cssd)" = "$cpid" ] && alive "$cpid" || fail "cssd changed or died"

    run "$ITOOL" verify-writer "$dir" "$wlog" "${names[@]}" --create c "${sizes[@]}"
    run "$ITOOL" verify "$MNT/committed" f 40 "${csizes[@]}"
    # The new mount writes and commits as usual.
    run "$ITOOL" mkfiles "$dir" after 2 "${sizes[@]}"
    run "$ITOOL" verify "$dir" after 2 "${sizes[@]}"
    rm -f "$dir"/after* || fail "rm in $dir"
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
