#!/usr/bin/env bash
# bigwrite.sh -- a write session much bigger than memory budgets streams to
# the storage site: one file of 3 GiB (BIGWRITE_MIB) written in one session
# and committed at close, while the peak resident memory (VmHWM) of
# locusfs-mount and of locus-storaged stays under 256 MiB each; then the
# whole file reads back right (checked by a pattern, not by keeping it).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init bigwrite
find_helper ITOOL itool

mib=${BIGWRITE_MIB:-3072}
limit_kb=$((256 * 1024))
avail_kb=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
[ "$avail_kb" -gt $((mib * 1024 * 3)) ] || skip "needs $((mib * 3)) MiB free in $WORK"

cluster_up
mpid=$(pid_of mount)
spid=$(pid_of storaged)
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# The pattern of each MiB names its index, so the read-back needs no copy.
run "$ITOOL" bigwrite "$MNT/big" "$mib"
m=$(hwm "$mpid")
s=$(hwm "$spid")
log "peak resident memory after $mib MiB: mount ${m} kB, storaged ${s} kB"
[ "$m" -lt "$limit_kb" ] || fail "locusfs-mount peaked at ${m} kB writing $mib MiB"
[ "$s" -lt "$limit_kb" ] || fail "locus-storaged peaked at ${s} kB writing $mib MiB"
[ "$(stat -c %s "$MNT/big")" = $((mib * 1024 * 1024)) ] || fail "size after close"
drop_caches
run "$ITOOL" bigcheck "$MNT/big" "$mib"
pass "$mib MiB in one session with bounded memory"
