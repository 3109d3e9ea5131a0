#!/usr/bin/env bash
# rebuild.sh -- `locusctl fsck --rebuild` (stop storaged, rebuild its
# SQLite index from the segment log, start it again) must give back exactly
# the same tree: files (empty, small, page-sized, large, sparse, rewritten
# several times, truncated), directories (nested, empty, set-group-ID),
# symlinks (relative, absolute, dangling, long), hard links (across
# directories), a FIFO, xattrs (on files and directories, replaced and
# removed ones), owners, modes, times, and no trace of what was deleted or
# renamed away.  Compared with `itool treesum` (type, mode, owner, size,
# links, inode number, mtime, ctime, content/target hash, xattrs) through
# the mount that stayed up (after dropping caches), then again after a full
# restart.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init rebuild
find_helper ITOOL itool

cluster_up
mount_pid=$(pid_of mount)
T=$MNT/tree
mkdir -p "$T" || fail "mkdir in the mount"
(
    set -e
    cd "$T"
    mkdir -p a/b/c empty sg
    chmod 2775 sg
    chown 0:12345 sg
    : >zero
    printf x >one
    head -c 4095 /dev/urandom >page-1
    head -c 4096 /dev/urandom >page
    head -c $((1024 * 1024 + 3)) /dev/urandom >a/b/big
    truncate -s 10M a/sparse
    printf tail | dd of=a/sparse bs=1 seek=$((10 * 1024 * 1024 - 4)) conv=notrunc status=none
    for i in 1 2 3 4 5; do head -c $((i * 10000)) /dev/urandom >a/rewritten; done
    head -c 300000 /dev/urandom >a/truncated
    truncate -s 12345 a/truncated
    head -c 5000 /dev/urandom >sg/in-sg
    ln -s ../one a/b/rel-link
    ln -s /etc/hostname abs-link
    ln -s does/not/exist dangling
    ln -s "$(head -c 3000 /dev/zero | tr '\0' 'y')" long-link
    head -c 777 /dev/urandom >hard
    ln hard a/hard2
    ln hard a/b/c/hard3
    mkfifo a/fifo
    head -c 100 /dev/urandom >owned
    chown 65534:65534 owned
    chmod 0640 owned
    chmod 4755 a/b/big
    touch -d '2001-02-03 04:05:06.123456789' one
    # Things that must stay gone.
    head -c 1000 /dev/urandom >deleted
    rm deleted
    mkdir gone-dir
    rmdir gone-dir
    head -c 2000 /dev/urandom >renamed-away
    mv renamed-away a/renamed-here
    head -c 3000 /dev/urandom >replaced
    head -c 4000 /dev/urandom >replacer
    mv replacer replaced
    ln hard hard-removed
    rm hard-removed
) || fail "building the tree"
run "$ITOOL" setxattr "$T/one" user.color blue
run "$ITOOL" setxattr "$T/one" user.size large
run "$ITOOL" setxattr "$T/a" user.dir yes
run "$ITOOL" setxattr "$T/hard" user.shared "seen through every link"
run "$ITOOL" setxattr "$T/page" user.replaced first
run "$ITOOL" setxattr "$T/page" user.replaced second
run "$ITOOL" setxattr "$T/page" user.removed soon
run "$ITOOL" rmxattr "$T/page" user.removed
sync

drop_caches
"$ITOOL" treesum "$T" >"$WORK/before.txt" || fail "treesum before"
log "$(wc -l <"$WORK/before.txt") inodes recorded"

run "$LOCUSCTL" fsck --rebuild --state "$STATE"
wait_for 60 "the mount to answer after the rebuild" stat "$T/one"
[ "$(pid_of mount)" = "$mount_pid" ] && alive "$mount_pid" || fail "the mount process changed"

drop_caches
"$ITOOL" treesum "$T" >"$WORK/after.txt" || fail "treesum after the rebuild"
diff -u "$WORK/before.txt" "$WORK/after.txt" >&2 || fail "the tree changed across fsck --rebuild"

cluster_down
cluster_up
"$ITOOL" treesum "$T" >"$WORK/after2.txt" || fail "treesum after a restart"
diff -u "$WORK/before.txt" "$WORK/after2.txt" >&2 || fail "the tree changed across the restart"

# And the rebuilt index takes new work.
run "$ITOOL" mkfiles "$T" new 5 --min 1 --max 100000
run "$ITOOL" verify "$T" new 5 --min 1 --max 100000
pass
