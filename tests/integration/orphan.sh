#!/usr/bin/env bash
# orphan.sh -- a file unlinked while open lives until the last close
# anywhere in the cluster, across mounts and across a storage-site restart,
# and is freed after that last close.
#
#  - mount A (a second locusfs-mount of the cluster) holds file f open for
#    reading and writing; the dev mount B opens f too, unlinks it and closes
#    its own descriptor: A's writes go on and A reads its data back (B used
#    to tell the storage site to free the file at its own last close, which
#    also ended A's write session);
#  - storaged is killed (kill -9) and started again (dev up) while A holds
#    the unlinked file: the orphan is still there (storaged used to free
#    every orphan at start), A reads it through its descriptor and writes
#    it through a descriptor reopened from /proc;
#  - cssd is killed and started again: A re-announces its opens to the new
#    CSS, which keeps the orphan after its reclaim window;
#  - A closes: the CSS frees the orphan (the storage site's inode count
#    drops back, the CSS's log says so).
# The daemons run with a 2 s lease (lib.sh daemons_with).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init orphan

daemons_with --lease-ms 2000

# The root container's inode count, from the storage site's status.
inodes() {
    "$LOCUSCTL" status --state "$STATE" --json 2>/dev/null |
        grep -o '"containers":\[{[^}]*' | grep -o '"inodes":[0-9]*' | head -n 1 | cut -d: -f2
}
inodes_are() { [ "$(inodes)" = "$1" ]; }
# Content of A's descriptor 7, through a fresh open of the same inode.
a_reads() { cat "/proc/$$/fd/7"; }
a_reads_is() { [ "$(a_reads)" = "$1" ]; }

cluster_up
MA=$WORK/mnt-a
mount_more "$MA"
apid=$MORE_PID

n0=$(inodes)
[ -n "$n0" ] || fail "no inode count in the storage site's status"
# A creates f and keeps it open (fd 7, read-write); each write below is
# committed by the close of the dup the shell makes for it.
exec 7<>"$MA/f" || fail "open through A"
printf one >&7 || fail "write through A"
wait_for 10 "B to see f" test -e "$MNT/f"
n1=$(inodes)
[ "$n1" -gt "$n0" ] || fail "the create did not add an inode ($n0 -> $n1)"

# B opens f, unlinks it, closes its descriptor.
exec 8<"$MNT/f" || fail "open through B"
rm "$MNT/f" || fail "unlink through B"
exec 8<&-
wait_for 10 "A to see f gone" eval '! test -e "$MA/f"'

# A goes on writing and reads its data back.
printf two >&7 || fail "A cannot write the file B unlinked"
a_reads_is onetwo || fail "A reads '$(a_reads)', expected 'onetwo'"
inodes_are "$n1" || fail "the orphan was freed while A holds it ($(inodes) inodes, expected $n1)"

# kill -9 storaged and start it again while A holds the unlinked file.
spid=$(pid_of storaged)
log "kill -9 storaged (pid $spid)"
kill -KILL "$spid"
wait_for 30 "storaged to die" dead "$spid"
cluster_up
[ "$(pid_of storaged)" != "$spid" ] || fail "storaged was not restarted"
# The CSS has asked the new storaged for its orphans and kept this one.
wait_for 30 "the CSS to learn the orphans of the restarted storage site" \
    grep -q "storage site 1 holds 1 orphan" "$STATE/log/cssd.log"
wait_for 30 "A to read the orphan after the restart" a_reads_is onetwo
inodes_are "$n1" || fail "the orphan did not survive the storage site's restart ($(inodes) inodes)"
# A's first write session died with storaged (EIO, documented); a new one
# on the same inode, opened through /proc, writes and commits.
exec 6>>"/proc/$$/fd/7" || fail "A cannot reopen the unlinked file for writing"
printf three >&6 || fail "A cannot write the unlinked file after the restart"
a_reads_is onetwothree || fail "A reads '$(a_reads)', expected 'onetwothree'"

# kill -9 the CSS and start it again: its open table is gone; A sees the
# new CSS's boot id in the mount table and re-announces its opens within
# the reclaim window, so the orphan is still kept after it.
cpid=$(pid_of cssd)
log "kill -9 cssd (pid $cpid)"
kill -KILL "$cpid"
wait_for 30 "cssd to die" dead "$cpid"
cluster_up
cpid2=$(pid_of cssd)
[ "$cpid2" != "$cpid" ] || fail "cssd was not restarted"
wait_for 30 "mount A to re-announce its opens" grep -q "the CSS restarted: told it 2 open" "$WORK/mount-mnt-a.log"
wait_for 60 "the new CSS's reclaim window to end" grep -q "reclaim window over" "$STATE/log/cssd.log"
inodes_are "$n1" || fail "the orphan was freed after a CSS restart although A holds it ($(inodes) inodes)"
a_reads_is onetwothree || fail "A reads '$(a_reads)' after the CSS restart"

# A's last close: the CSS frees the orphan.  (Closing 7 reports the loss of
# its first session, EIO; one redirection per exec, or bash would undo the
# others when one fails.)
exec 6>&- || fail "close of A's second descriptor"
exec 7<&- 2>/dev/null
ls -l "/proc/$$/fd" | grep -q "$MA" && fail "the shell still holds a descriptor in A"
wait_for 20 "the orphan to be freed after A's last close" inodes_are "$n0"
grep -q "orphan freed at storage site 1" "$STATE/log/cssd.log" ||
    fail "the CSS's log does not say it freed the orphan"

# Unlinking a file nobody holds frees it at once (no open anywhere).
echo x >"$MNT/g" || fail "create g"
wait_for 10 "g's inode" inodes_are "$(( n0 + 1 ))"
rm "$MNT/g" || fail "unlink g"
wait_for 20 "g to be freed" inodes_are "$n0"
pass
