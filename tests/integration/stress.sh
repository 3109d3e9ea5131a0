#!/usr/bin/env bash
# stress.sh -- concurrent random operations (stress.c) against a real
# mount; the mount must survive them, and the tree must be intact across
# an unmount and a new mount.
#
#  1. rwrace: one thread loops open(O_WRONLY)/pwrite/close on a file while
#     another preads it through an O_RDONLY descriptor (the last close of a
#     write session racing a read that names it);
#  2. mixed: STRESS_PROCS (4) processes x STRESS_THREADS (3) threads doing
#     STRESS_OPS (15000) random operations each, for at most STRESS_SECS
#     (75) seconds (about 60 s here; STRESS_SEED fixes the seed), on a
#     small shared set of names: create, write, read, truncate, rename,
#     link, unlink, mkdir, rmdir, setattr (also on open descriptors),
#     xattrs, fsync, fallocate, mmap writes;
#  3. a single writer then makes files of known content (itool mkfiles);
#  4. the mount must still run, answer, and its log hold no sanitizer
#     report; the whole tree is summed (every file read in full, every
#     inode's attributes and xattrs), the cluster goes down and up again,
#     and the sum must be the same, and the known files byte-exact.
#
# With an AddressSanitizer build (MESON_BUILD_ROOT=build-asan, as `meson
# test -C build-asan stress` sets it) the daemons and the mount are the
# ASan binaries: ASAN_OPTIONS makes an error abort the process, and its
# report goes to the process's stderr, which is its log ($STATE/log/*).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init stress
find_helper STRESS stress
find_helper ITOOL itool

# Ours first: the caller's settings win.  Leaks are not checked here (the
# daemons end by SIGTERM with memory still in use by design).
export ASAN_OPTIONS="abort_on_error=1:halt_on_error=1:detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# mount_survived WHEN: the mount process runs, the mount answers, no report.
mount_survived() {
    local mpid
    mpid=$(pid_of mount)
    no_sanitizer_report "$1"
    [ -n "$mpid" ] && alive "$mpid" || fail "$1: the mount process (pid '${mpid}') died"
    is_mounted "$MNT" || fail "$1: $MNT is no longer mounted"
    stat "$MNT/." >/dev/null || fail "$1: the mount does not answer"
}

cluster_up
mpid=$(pid_of mount)
dir=$MNT/s
mkdir -p "$dir" || fail "mkdir in the mount"

rc=0
timeout -k 10 300 "$STRESS" rwrace "$dir" --iters "${STRESS_RACE_ITERS:-3000}" || rc=$?
mount_survived "after rwrace"
[ "$rc" -eq 0 ] || fail "rwrace: an operation failed (exit $rc)"

rc=0
timeout -k 10 600 "$STRESS" mixed "$dir" --procs "${STRESS_PROCS:-4}" \
    --threads "${STRESS_THREADS:-3}" --ops "${STRESS_OPS:-15000}" \
    --secs "${STRESS_SECS:-75}" ${STRESS_SEED:+--seed "$STRESS_SEED"} || rc=$?
mount_survived "after the mixed operations"
[ "$rc" -eq 0 ] || fail "mixed: unexpected errors (exit $rc; the seed is above)"
[ "$(pid_of mount)" = "$mpid" ] || fail "the mount process changed (was $mpid)"

# A single writer, content known.
mkdir -p "$MNT/final" || fail "mkdir final"
run "$ITOOL" mkfiles "$MNT/final" f 30 --min 1 --max 300000

# Every file readable, every inode consistent; the same after a remount.
"$ITOOL" treesum "$MNT" >"$WORK/before.sum" || fail "treesum of the tree before the remount"
[ -s "$WORK/before.sum" ] || fail "treesum printed nothing"
log "the tree has $(wc -l <"$WORK/before.sum") inodes"
find "$MNT" -xdev -print0 | xargs -0 stat -c '%i %s %h %n' >/dev/null ||
    fail "find + stat of the tree failed"
cluster_down
no_sanitizer_report "after the unmount"
cluster_up
"$ITOOL" treesum "$MNT" >"$WORK/after.sum" || fail "treesum of the tree after the remount"
if ! diff -u "$WORK/before.sum" "$WORK/after.sum" >"$WORK/sum.diff"; then
    head -n 40 "$WORK/sum.diff" >&2
    fail "the tree changed across the remount"
fi
run "$ITOOL" verify "$MNT/final" f 30 --min 1 --max 300000
mount_survived "after the remount"
pass
