#!/usr/bin/env bash
# coherence.sh -- commit notes (issue #10, docs/coherence.md): a commit
# through one mount invalidates what every other mount caches of the file
# or directory, kernel caches included, on the same site and on another.
#
# A cluster of two sites (locusctl dev up --sites 2) and three more mounts:
#   A  site 1, default timeouts: it writes;
#   B  site 1, entry_timeout=60,attr_timeout=60: a second mount of site 1;
#   C  site 2 (bind=127.0.0.2,site=2: reads at site 2's own copy), the same
#      long timeouts.
# B and C keep names and attributes for 60 s and an open file's pages for
# as long as it is open, unless a note says otherwise.  Every wait below is
# bounded by 10 s, far below those 60 s:
#  1. a reader on B and one on C hold a file open and read it in a loop
#     (itool watch-read) while A writes and commits new content of the
#     same length: both see it; C reads at site 2's own copy, and sees a
#     commit also when its read after the primary's note got the old
#     version there (site 2 stopped meanwhile): site 2's install note;
#  2. after A's commit, stat on B and C shows the new size and mtime; a
#     name B and C have looked up, renamed through A, is gone there and the
#     new name is there; a removed name is gone; a name made in a new
#     directory is there (ls);
#  3. A is never told of its own commits (its debug log names no note by
#     its own client id), while B is told of A's;
#  4. kill -9 of the CSS while B's reader holds the file open, and A
#     commits a write session it opened before: the reader sees it once the
#     CSS is back (notes missed are made up for: the storage site's group
#     note at registration, the mounts' invalidation when they watch
#     again); the mounts watch the restarted CSS and A's next commit
#     reaches a reader on B.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init coherence
find_helper ITOOL itool

# Addresses of its own: part 1 cuts site 2's replicator off site 1 (a cut
# is machine-wide, lib.sh net_cut).
A1=127.0.81.1 A2=127.0.81.2
sites_up 2 --addrs "$A1,$A2"
wait_for 30 "site 2 to register" registered 2
LONG=entry_timeout=60,attr_timeout=60
MA=$WORK/a MB=$WORK/b MC=$WORK/c
mount_more "$MA" "bind=$A1,site=1" --log-level debug
mount_more "$MB" "bind=$A1,site=1,$LONG" --log-level debug
mount_more "$MC" "bind=$A2,site=2,$LONG" --log-level debug
MC_PID=$MORE_PID
for m in A B C; do
    log_file=$WORK/mount-$(echo "$m" | tr A-Z a-z).log
    wait_for 10 "mount $m to watch the CSS" grep -q "watching the CSS" "$log_file"
done
client_a=$(grep -o 'client [0-9a-f]\{16\}' "$WORK/mount-a.log" | head -n 1 | cut -d' ' -f2)
[ -n "$client_a" ] || fail "mount A does not log its client id"

# ---- 1. readers holding the file open ----
printf 'version-1' >"$MA/f" || fail "write through A"
run "$LOCUSCTL" sync --state "$STATE" --timeout 30
for m in "$MB" "$MC"; do
    [ "$(cat "$m/f")" = version-1 ] || fail "$m does not read version-1"
done
"$ITOOL" watch-read "$MB/f" version-2 10 "$WORK/ready-b" >"$WORK/read-b.out" 2>&1 &
rb=$!
track_pid "$rb"
"$ITOOL" watch-read "$MC/f" version-2 10 "$WORK/ready-c" >"$WORK/read-c.out" 2>&1 &
rc=$!
track_pid "$rc"
wait_for 10 "the readers to open the file" test -e "$WORK/ready-b" -a -e "$WORK/ready-c"
printf 'version-2' >"$MA/f" || fail "rewrite through A"
wait "$rb" || fail "the reader on B (site 1) did not see A's commit: $(cat "$WORK/read-b.out")"
wait "$rc" || fail "the reader on C (site 2) did not see A's commit: $(cat "$WORK/read-c.out")"
log "reader on B: $(cat "$WORK/read-b.out"); on C: $(cat "$WORK/read-c.out")"
# C read at its own site's copy (docs/replication.md "Reads at a current
# local copy"): it has a connection to site 2's storage daemon, so the
# install note of site 2 [W2] is what made its reader see version-2.
peers=$(ss -tanpH 2>/dev/null | awk -v p="pid=$MC_PID," 'index($0, p) { print $5 }')
grep -qx "$A2:$(site_port 2 storaged)" <<<"$peers" ||
    fail "mount C has no connection to site 2's storage daemon (it did not read there): $peers"

# The same with site 2's replicator cut off site 1's storage daemon while
# A commits: C is told of the commit by site 1's note and reads again,
# at its site's copy, which is still the old version; only site 2's
# install note [W2], once the cut heals and it pulls, makes it read the new.
ino=$(printf '%#x' $(( $(stat -c %i "$MA/f") & 0xffffffffffff )))
notes_c() { grep -c "commit note: <1,$ino> .* by client $client_a" "$WORK/mount-c.log" || true; }
site2_behind() {
    local out
    out=$("$LOCUSCTL" copies /f --state "$STATE" 2>&1) || true
    grep -q "site 2: vv .*, 9 bytes" <<<"$out" && ! grep -q "site 2: vv $(sed -n 's/.*site 1: vv \([0-9a-f]*\),.*/\1/p' <<<"$out")," <<<"$out"
}
"$ITOOL" watch-read "$MC/f" version-3 30 "$WORK/ready-c3" >"$WORK/read-c3.out" 2>&1 &
rc=$!
track_pid "$rc"
wait_for 10 "the reader to open the file" test -e "$WORK/ready-c3"
n0=$(notes_c)
net_cut "$A2" "$A1" "$(site_port 1 storaged)"
printf 'version-3' >"$MA/f" || fail "rewrite through A"
wait_for 10 "C to be told of A's commit" eval '[ "$(notes_c)" -gt "$n0" ]'
site2_behind || fail "site 2's copy of /f is not behind across the cut: $("$LOCUSCTL" copies /f --state "$STATE" 2>&1)"
alive "$rc" || fail "the reader on C read the new version while its site's copy was old: $(cat "$WORK/read-c3.out")"
net_heal
wait "$rc" || fail "the reader on C did not see A's commit once site 2 installed it: $(cat "$WORK/read-c3.out")"
log "reader on C, site 2 cut off site 1 during the commit: $(cat "$WORK/read-c3.out")"

# ---- 2. attributes and names ----
mkdir "$MA/d" || fail "mkdir through A"
echo one >"$MA/d/n1" || fail "create through A"
echo two >"$MA/d/gone" || fail "create through A"
for m in "$MB" "$MC"; do
    wait_for 10 "$m to see d/n1" stat "$m/d/n1"
    stat "$m/d/gone" >/dev/null || fail "$m: no d/gone"
    stat -c %s "$m/f" >/dev/null || fail "stat $m/f"
done
printf 'version-3, longer' >"$MA/f" || fail "rewrite through A"
want=$(stat -c '%s %Y' "$MA/f")
mv "$MA/d/n1" "$MA/d/n2" || fail "rename through A"
rm "$MA/d/gone" || fail "unlink through A"
mkdir "$MA/d/sub" && echo three >"$MA/d/sub/x" || fail "mkdir and create through A"
attrs_are() { [ "$(stat -c '%s %Y' "$1/f")" = "$want" ]; }
for m in "$MB" "$MC"; do
    wait_for 10 "$m to show f's new size and mtime ($want)" attrs_are "$m"
    wait_for 10 "$m to lose the renamed name d/n1" eval '! stat "$m/d/n1" >/dev/null 2>&1'
    wait_for 10 "$m to see the new name d/n2" stat "$m/d/n2"
    wait_for 10 "$m to lose the removed d/gone" eval '! stat "$m/d/gone" >/dev/null 2>&1'
    out=$(ls "$m/d/sub")
    [ "$out" = x ] || fail "ls $m/d/sub: '$out', expected x"
    [ "$(cat "$m/d/n2")" = one ] || fail "$m/d/n2 does not read 'one'"
done

# ---- 3. a mount is not told of its own commits ----
own=$(grep -c "commit note: .* by client $client_a" "$WORK/mount-a.log") || true
[ "${own:-0}" = 0 ] || fail "mount A was told of $own of its own commits"
seen=$(grep -c "commit note: .* by client $client_a" "$WORK/mount-b.log") || true
[ "${seen:-0}" -ge 5 ] || fail "mount B was told of ${seen:-0} of A's commits, expected at least 5"
log "notes of A's commits: $seen at B, 0 at A"
out=$("$LOCUSCTL" status --json --state "$STATE" 2>/dev/null | tr -d ' \n' | grep -o '"commit_notes":{[^}]*}') ||
    fail "locusctl status shows no commit_notes of the CSS"
w=$(grep -o '"watchers":[0-9]*' <<<"$out" | cut -d: -f2)
[ "${w:-0}" -ge 5 ] || fail "the CSS counts ${w:-0} watching mounts, expected 5 (2 dev mounts, A, B, C): $out"
log "the CSS: $out"

# ---- 4. the CSS restarts under a reader ----
# A commits while the CSS is down (its write session was opened before):
# the note cannot go out then; the reader must see it all the same (the
# storage site says "everything may have changed" when it registers again,
# and the mount drops everything when it watches again).
watches() { grep -c "watching the CSS at" "$WORK/mount-b.log" || true; }
"$ITOOL" watch-read "$MB/f" version-5 60 "$WORK/ready-b5" >"$WORK/read-b5.out" 2>&1 &
rb=$!
track_pid "$rb"
wait_for 10 "the reader to open the file" test -e "$WORK/ready-b5"
exec 7>"$MA/f" || fail "open for writing through A"
pidc=$(site_pid 1 cssd) || fail "no pid of the CSS"
log "+ kill -9 the CSS ($pidc)"
kill -9 "$pidc"
wait_for 30 "the CSS to be gone" dead "$pidc"
printf 'version-5' >&7 || fail "write through A while the CSS is down"
exec 7>&-       # the last close: the commit, at the storage site
sites_up 2 --addrs "$A1,$A2"
wait "$rb" || fail "the reader on B did not see A's commit made while the CSS was down: $(cat "$WORK/read-b5.out")"
log "a commit while the CSS was down: $(cat "$WORK/read-b5.out")"
wait_for 20 "mount B to watch the restarted CSS" eval '[ "$(watches)" -ge 2 ]'
"$ITOOL" watch-read "$MB/f" version-6 10 "$WORK/ready-b6" >"$WORK/read-b6.out" 2>&1 &
rb=$!
track_pid "$rb"
wait_for 10 "the reader to open the file" test -e "$WORK/ready-b6"
printf 'version-6' >"$MA/f" || fail "rewrite through A after the restart"
wait "$rb" || fail "the reader on B did not see A's commit after the CSS restarted: $(cat "$WORK/read-b6.out")"
log "a commit after the restart: $(cat "$WORK/read-b6.out")"
no_sanitizer_report "at the end" "$WORK"/mount-*.log
pass
