#!/usr/bin/env bash
# posix.sh -- every filesystem operation and error through a real LocusFS
# mount (tests/integration/posix_ops.c), including EXDEV across file
# groups: a second file group "other" is created and mounted at /other.
#
# Environment: LOCUSCTL / MESON_BUILD_ROOT (lib.sh), POSIX_OPS,
# POSIX_OPS_EXTRA (more arguments for posix_ops, e.g. "--no-big").
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init posix
find_helper POSIX_OPS posix_ops

cluster_up

# A second file group, mounted at /other inside the mount.
run "$LOCUSCTL" fg create other --mount /other --state "$STATE"
other_fg_ready() {
    local ino
    [ -d "$MNT/other" ] || return 1
    ino=$(stat -c %i "$MNT/other") || return 1
    # <fg, ino> maps to FUSE inode fg << 48 | ino: the root file group is 1
    # (and its root is FUSE inode 1), so another group's inodes are >= 2^49.
    # (A file group mounted as a separate file system would do too.)
    [ "$ino" -ge $((1 << 49)) ] ||
        [ "$(stat -c %d "$MNT/other")" != "$(stat -c %d "$MNT")" ]
}
wait_for 60 "file group 'other' mounted at $MNT/other" other_fg_ready
mkdir -p "$MNT/t" "$MNT/other/t" || fail "mkdir in the mount"
chmod 0755 "$MNT" "$MNT/t" "$MNT/other" "$MNT/other/t"

rc=0
# shellcheck disable=SC2086
timeout -k 10 900 "$POSIX_OPS" "$MNT/t" --other-fg "$MNT/other/t" ${POSIX_OPS_EXTRA:-} &
track_pid $!
wait $! || rc=$?
[ "$rc" -eq 0 ] || fail "posix_ops reported failures (exit $rc)"

# The daemons must have survived it all.
for d in storaged cssd mount; do
    alive "$(pid_of $d)" || fail "$d is no longer running"
done
pass
