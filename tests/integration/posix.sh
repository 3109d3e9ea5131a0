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

# overlayfs with its upper and work directories in LocusFS: it refuses an
# upper file system without renameat2(RENAME_WHITEOUT), and leaves its
# whiteouts (character devices 0/0) there when a lower name goes away.
is_whiteout() { [ "$(stat -c '%F %t:%T' "$1" 2>/dev/null)" = "character special file 0:0" ]; }
if grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null; then
    OV=$WORK/ov LOWER=$WORK/lower UPPER=$MNT/ovl/upper
    mkdir -p "$OV" "$LOWER/dir" "$UPPER" "$MNT/ovl/work" || fail "overlay directories"
    for f in a b dir/f; do
        echo "lower $f" >"$LOWER/$f" || fail "overlay lower file $f"
    done
    track_mount "$OV"
    mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$UPPER,workdir=$MNT/ovl/work" "$OV" ||
        fail "overlayfs refuses LocusFS as its upper layer: $(dmesg 2>/dev/null | grep -i overlayfs | tail -3)"
    rm "$OV/a" || fail "overlay: rm of a lower file"
    is_whiteout "$UPPER/a" || fail "overlay: no whiteout for a removed lower file"
    mv "$OV/b" "$OV/b2" || fail "overlay: rename of a lower file"
    is_whiteout "$UPPER/b" || fail "overlay: no whiteout at a renamed lower file's old name"
    [ "$(cat "$UPPER/b2")" = "lower b" ] || fail "overlay: the renamed file is not in the upper layer"
    rm -r "$OV/dir" || fail "overlay: rm -r of a lower directory"
    is_whiteout "$UPPER/dir" || fail "overlay: no whiteout for a removed lower directory"
    names=$(cd "$OV" && echo *)
    [ "$names" = b2 ] || fail "overlay: the merged directory lists '$names', not only b2"
    umount "$OV" || fail "overlay: umount"
    log "overlayfs on a LocusFS upper layer: whiteouts for rm, mv and rm -r"
else
    log "no overlayfs in this kernel: overlay checks not run"
fi

# The daemons must have survived it all.
for d in storaged cssd mount; do
    alive "$(pid_of $d)" || fail "$d is no longer running"
done
pass
