#!/usr/bin/env bash
# machines.sh -- the "three machines" walk-through of docs/cluster.md,
# followed on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (one folder per machine,
# each program bound to its machine's address, fixed ports as a real
# installation has them):
#  1. machine 1: locusctl site init (key, site.conf, root file group), then
#     locus-cssd and locus-storaged started with --config only;
#  2. machines 2 and 3: locusctl site join 127.0.0.1:PORT --key ... --addr
#     ...: site ids 2 and 3, the site and mount tables received, the key
#     copied; locus-storaged --config registers each (locusctl sites);
#  3. a file group placed on the joined sites (fg create --sites 2,3
#     --config ...), mounted on machines 2 and 3 (-o bind=,site=): what one
#     writes the other reads; the containers are on sites 2 and 3 only.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init machines

SS_BIN=$MESON_BUILD_ROOT/storage/locus-storaged
CSS_BIN=$MESON_BUILD_ROOT/css/locus-cssd
MOUNT_BIN=$MESON_BUILD_ROOT/fused/locusfs-mount
# Fixed ports, as on real machines; below the ephemeral range, drawn from
# the pid so that two runs side by side do not collide.
CP=$((20000 + ($$ % 5000) * 2))
SP=$((CP + 1))
M=$WORK/machine

# ---- 1. machine 1 makes the cluster
run "$LOCUSCTL" site init --addr 127.0.0.1 --dir "$M"1 --css-port "$CP" --storage-port "$SP"
[ -d "$M"1/data/fg-1 ] || fail "site init made no root file group"
out=$("$LOCUSCTL" site init --addr 127.0.0.1 --dir "$M"1 2>&1) && fail "a second site init in the same folder succeeded"
case "$out" in *"already holds a site"*) ;; *) fail "second site init: unexpected message: $out" ;; esac
"$CSS_BIN" --config "$M"1/site.conf --pid-file "$M"1/cssd.pid >"$WORK/cssd1.log" 2>&1 &
track_pid $!
"$SS_BIN" --config "$M"1/site.conf >"$WORK/storaged1.log" 2>&1 &
track_pid $!
wait_for 30 "site 1 to register" \
    sh -c "'$LOCUSCTL' sites --json --config '$M'1/site.conf | grep -q '\"site\":1,\"address\":\"127.0.0.1\",\"port\":$SP,\"state\":\"up\"'"

# ---- 2. machines 2 and 3 join it
for k in 2 3; do
    run "$LOCUSCTL" site join "127.0.0.1:$CP" --key "$M"1/cluster.key --addr "127.0.0.$k" --dir "$M$k" \
        --storage-port "$SP"
    grep -qx "id = $k" "$M$k/site.conf" || fail "machine $k did not get site id $k: $(cat "$M$k/site.conf")"
    grep -q '"file_groups":\[{"fg":1,"name":"root","path":"/"' "$M$k/cluster.json" ||
        fail "machine $k did not receive the mount table: $(cat "$M$k/cluster.json")"
    cmp -s "$M"1/cluster.key "$M$k/cluster.key" || fail "machine $k's key is not the cluster's"
    [ "$(stat -c %a "$M$k/cluster.key")" = 400 ] || fail "machine $k's key is not mode 0400"
    "$SS_BIN" --config "$M$k/site.conf" >"$WORK/storaged$k.log" 2>&1 &
    track_pid $!
    wait_for 30 "site $k to register" \
        sh -c "'$LOCUSCTL' sites --json --config '$M'1/site.conf | grep -q '\"site\":$k,\"address\":\"127.0.0.$k\",\"port\":$SP,\"state\":\"up\"'"
done
grep -q '"sites":\[{"site":1,"host":"127.0.0.1","port":'"$SP"'},{"site":2,' "$M"3/cluster.json ||
    fail "machine 3 did not receive the site table with sites 1 and 2: $(cat "$M"3/cluster.json)"
printf 'x\n' >"$WORK/badkey"
out=$("$LOCUSCTL" site join "127.0.0.1:$CP" --key "$WORK/badkey" --addr 127.0.0.4 --dir "$M"4 2>&1) &&
    fail "site join with a bad key succeeded"
[ ! -e "$M"4/site.conf ] || fail "a refused join wrote a site.conf"

# ---- 3. a file group on the joined sites, used from machines 2 and 3
run "$LOCUSCTL" fg create proj --mount /proj --sites 2,3 --config "$M"2/site.conf
[ -d "$M"2/data/fg-2 ] && [ -d "$M"3/data/fg-2 ] && [ ! -d "$M"1/data/fg-2 ] ||
    fail "file group 2 is not on exactly sites 2 and 3"
"$LOCUSCTL" fg list --json --config "$M"3/site.conf |
    grep -q '"fg":2,"name":"proj","path":"/proj",[^{]*"primary":2,"holders":\[{"site":2,' ||
    fail "fg list: proj should have primary 2 and holders 2,3: $("$LOCUSCTL" fg list --json --config "$M"3/site.conf)"
for k in 2 3; do
    mkdir -p "$WORK/mnt$k"
    "$MOUNT_BIN" "$WORK/mnt$k" -f \
        -o "key=$M$k/cluster.key,css=127.0.0.1:$CP,bind=127.0.0.$k,site=$k" >"$WORK/mount$k.log" 2>&1 &
    track_pid $!
    track_mount "$WORK/mnt$k"
    wait_for 30 "machine $k's mount" is_mounted "$WORK/mnt$k"
    wait_for 30 "machine $k's mount to show /proj" test -d "$WORK/mnt$k/proj"
done
echo "from machine 2" >"$WORK/mnt2/proj/note" || fail "write through machine 2"
[ "$(cat "$WORK/mnt3/proj/note")" = "from machine 2" ] || fail "machine 3 does not read what machine 2 wrote"
for k in 2 3; do
    fusermount3 -u "$WORK/mnt$k" || fail "unmount of machine $k's mount"
done
pass
