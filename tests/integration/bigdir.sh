#!/usr/bin/env bash
# bigdir.sh -- a directory whose replicated state is over one message
# (4 MiB: here 22,000 entries of 230-byte names) converges on the other
# copy (issue #8 follow-up, docs/replication.md "Big directories"): its
# state travels in pieces, staged at the puller and installed as one
# commit.  Two sites, real daemons, real mounts.
#  1. 22,000 empty files created in one directory through site 1's mount
#     (site 1 is the primary); `locusctl sync` returns "in sync".
#  2. `locusctl copies /big` finds the directory's two copies the same
#     (vector), and `locusctl copies --tree /big` walks each holder's own
#     copy: the same 22,000 entries, each file the same.
#  3. Site 1's storage daemon is killed: site 2 serves the group, and a
#     listing through site 2's mount shows the 22,000 names site 1 made.
# Before the fix, site 2 logs EFBIG ("over the 4194304 a message
# carries") at every pass and `locusctl sync` times out.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init bigdir

N=${BIGDIR_N:-22000}
S1=$MNT/s1 S2=$MNT/s2
sites_up 2

mkdir "$S1/big" || fail "mkdir through site 1's mount"
# Long names make the directory pass one message with fewer creates.
long=$(printf 'name-%.0s' $(seq 44))
seq -f "$long%06g" 1 "$N" >"$WORK/names"
bytes=$(wc -c <"$WORK/names")
[ "$bytes" -gt $((4 << 20)) ] || fail "the names take $bytes bytes: not over one message (4 MiB)"
t0=$(now_ms)
# One create each (touch would add a setattr per file).
python3 -c 'import os, sys
for n in open(sys.argv[1]).read().split():
    os.close(os.open(os.path.join(sys.argv[2], n), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))' \
    "$WORK/names" "$S1/big" || fail "creating $N files through site 1's mount"
log "$N files created through site 1's mount in $(($(now_ms) - t0)) ms"
n=$(ls -f "$S1/big" | grep -vc '^\.\.\?$')
[ "$n" -eq "$N" ] || fail "site 1's mount lists $n files, not $N"

# ---- 1, 2: the copies converge -------------------------------------------
t0=$(now_ms)
run "$LOCUSCTL" sync --state "$STATE" --timeout 90
log "in sync $(($(now_ms) - t0)) ms after the last create"
if grep -q "over the .* a message carries" "$STATE/site2/log/storaged.log" "$STATE/site1/log/storaged.log"; then
    fail "a storage site still logs a state over one message"
fi
run "$LOCUSCTL" copies /big --state "$STATE"
out=$("$LOCUSCTL" copies /big --tree --state "$STATE" 2>&1) || { printf '%s\n' "$out" | tail -20 >&2; fail "the copies of /big differ"; }
printf '%s\n' "$out" | tail -3 >&2

# ---- 3: site 2's copy, seen through site 2's mount ------------------------
pid=$(site_pid 1 storaged)
[ -n "$pid" ] || fail "no pid of site 1's storaged"
kill -9 "$pid"
log "site 1's storaged (pid $pid) killed: site 2 serves /big"
listed() { [ "$(ls -f "$S2/big" 2>/dev/null | grep -vc '^\.\.\?$')" -eq "$N" ]; }
wait_for 60 "$N names listed through site 2's mount" listed
ls "$S2/big" >"$WORK/listed2" || fail "ls through site 2's mount"
sort "$WORK/names" | cmp -s - "$WORK/listed2" || fail "site 2 lists other names than site 1 made"
log "site 2 lists the $N names site 1 made"
pass
