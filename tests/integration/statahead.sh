#!/usr/bin/env bash
# statahead.sh -- the mount answers lookups in a directory from a listing
# read ahead with attributes once lookups there keep missing (fused/us_sa.h).
# That must never show a stale answer for a change made through the mount:
# after every kind of change, right after cold lookups have filled the
# listing, stat must show the change at once.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init statahead

cluster_up
D=$MNT/sa
mkdir -p "$D" || fail "mkdir in the mount"
for i in $(seq 1 60); do printf 'file %d\n' "$i" >"$D/f$i" || fail "create f$i"; done

# Cold lookups of every name (kernel caches dropped), so the listing is
# read ahead; then one change and an immediate check, for each kind.
warm() {
    drop_caches
    for i in $(seq 1 60); do [ -e "$D/f$i" ] || [ -e "$D/g$i" ] || true; done
}

warm
printf 'more\n' >>"$D/f7"
[ "$(stat -c %s "$D/f7")" = 12 ] || fail "size after append: $(stat -c %s "$D/f7")"
warm
chmod 600 "$D/f8"
[ "$(stat -c %a "$D/f8")" = 600 ] || fail "mode after chmod: $(stat -c %a "$D/f8")"
warm
mv "$D/f9" "$D/g9"
[ -e "$D/f9" ] && fail "f9 still there after rename"
[ "$(cat "$D/g9")" = "file 9" ] || fail "g9 content after rename"
warm
rm "$D/f10"
[ -e "$D/f10" ] && fail "f10 still there after unlink"
warm
ln "$D/f11" "$D/h11"
[ "$(stat -c %h "$D/f11")" = 2 ] || fail "link count after link: $(stat -c %h "$D/f11")"
warm
truncate -s 3 "$D/f12"
[ "$(stat -c %s "$D/f12")" = 3 ] || fail "size after truncate"
warm
touch -d '2001-02-03 04:05:06' "$D/f13"
[ "$(stat -c %Y "$D/f13")" = "$(date -d '2001-02-03 04:05:06' +%s)" ] || fail "mtime after touch -d"
warm
printf 'new file\n' >"$D/f61"
[ "$(cat "$D/f61")" = "new file" ] || fail "a file created after the listing"
# And the names it lists come back right after the caches are dropped.
warm
for i in $(seq 14 60); do
    [ "$(cat "$D/f$i")" = "file $i" ] || fail "f$i content"
done
pass "every change was visible at once"
