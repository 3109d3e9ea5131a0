#!/usr/bin/env bash
# sites.sh -- a dev cluster of three sites on 127.0.0.1-3 (issue #8,
# "Sites and a real multi-machine cluster"):
#  1. dev up --sites 3: site k's daemons and mount run from its own state
#     folder and address, its mount at $MNT/s<k>; every site runs a
#     locus-cssd (site 1's is the CSS; the others do membership, #9); every site holds the root file group; a file written through one
#     site's mount is read through another's (the root's primary serves all).
#  2. every socket of every program of site k (listening or connected) has
#     site k's address as its local address (ss -tanp).
#  3. fg create --copies 2 / --sites 3: containers at the chosen sites,
#     the holders and the primary in fg list --json and status; sites --json.
#  4. kill -9 of site 1's storaged: the primary of the root group moves to
#     site 2 at once, and a mount of site 2 with timeout=3 keeps answering.
#  5. dev down stops every program; dev up with no option restarts the
#     same three sites (STATE/sites); --sites 2 on that state is refused.
#  6. locus-storaged / locus-cssd --config FILE: a fourth site started from
#     a configuration file only registers on its own address; a typo in the
#     file is refused naming the line.
#  7. net_cut 127.0.0.2 / 127.0.0.1: site 2's mount (timeout=3) fails with
#     ETIMEDOUT or EHOSTUNREACH while site 1's keeps working; net_heal
#     brings site 2 back.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init sites

command -v ss >/dev/null || skip "ss is not installed (package iproute2)"
SS_BIN=$MESON_BUILD_ROOT/storage/locus-storaged
CSS_BIN=$MESON_BUILD_ROOT/css/locus-cssd
MOUNT_BIN=$MESON_BUILD_ROOT/fused/locusfs-mount

# ---- 1. three sites ------------------------------------------------------------
log "+ locusctl dev up $MNT --sites 3"
timeout 120 "$LOCUSCTL" dev up "$MNT" --sites 3 --state "$STATE" >&2 || fail "dev up --sites 3 failed"
for k in 1 2 3; do
    wait_for 30 "the mount of site $k at $MNT/s$k" is_mounted "$MNT/s$k"
    [ -d "$STATE/site$k/data" ] || fail "no data folder for site $k"
    [ -n "$(site_pid $k storaged)" ] || fail "no pid file for site $k's storaged"
    [ -n "$(site_pid $k mount)" ] || fail "no pid file for site $k's mount"
    [ -d "$STATE/site$k/data/fg-1" ] || fail "site $k holds no container of the root group"
done
[ "$(cat "$STATE/sites")" = "$(printf '127.0.0.1\n127.0.0.2\n127.0.0.3')" ] ||
    fail "STATE/sites does not list 127.0.0.1-3: $(cat "$STATE/sites")"
# a locus-cssd on every site (site 1's is the CSS of every file group)
for k in 1 2 3; do
    [ -n "$(site_pid $k cssd)" ] || fail "site $k runs no locus-cssd"
done
is_mounted "$MNT" && fail "$MNT itself is mounted; the sites' mounts are $MNT/s<k>"
echo "written through site 2" >"$MNT/s2/hello" || fail "write through site 2's mount"
[ "$(cat "$MNT/s3/hello")" = "written through site 2" ] || fail "site 3's mount does not read what site 2 wrote"

# ---- 2. every socket on its site's address ----------------------------------------
# sockets_of PID: the local addresses of PID's TCP sockets, one a line.
sockets_of() {
    ss -tanpH 2>/dev/null | awk -v p="pid=$1," 'index($0, p) { print $4 }'
}
check_bound() {
    local k=$1 name=$2 pid addr n=0 bad=
    pid=$(site_pid "$k" "$name")
    [ -n "$pid" ] && alive "$pid" || fail "site $k's $name is not running"
    while read -r addr; do
        [ -n "$addr" ] || continue
        n=$((n + 1))
        [ "${addr%:*}" = "127.0.0.$k" ] || bad="$bad $addr"
    done < <(sockets_of "$pid")
    [ "$n" -gt 0 ] || fail "site $k's $name (pid $pid) has no TCP socket"
    [ -z "$bad" ] || fail "site $k's $name (pid $pid) has sockets not on 127.0.0.$k:$bad"
    log "site $k's $name: $n socket(s), all on 127.0.0.$k"
}
for k in 1 2 3; do
    check_bound "$k" storaged
    check_bound "$k" mount
done
for k in 1 2 3; do
    check_bound "$k" cssd
done

# ---- 3. file groups on chosen sites ---------------------------------------------
run "$LOCUSCTL" fg create home --mount /home --copies 2 --state "$STATE"
run "$LOCUSCTL" fg create proj --mount /proj --sites 3 --state "$STATE"
out=$("$LOCUSCTL" fg create bad --mount /bad --sites 3,9 --state "$STATE" 2>&1) &&
    fail "fg create on an unregistered site 9 succeeded"
case "$out" in *"site 9"*) ;; *) fail "fg create on site 9: the message does not name the site: $out" ;; esac
[ -d "$STATE/site1/data/fg-2" ] && [ -d "$STATE/site2/data/fg-2" ] && [ ! -d "$STATE/site3/data/fg-2" ] ||
    fail "fg 2 (--copies 2) is not on exactly sites 1 and 2"
[ -d "$STATE/site3/data/fg-3" ] && [ ! -d "$STATE/site1/data/fg-3" ] && [ ! -d "$STATE/site2/data/fg-3" ] ||
    fail "fg 3 (--sites 3) is not on exactly site 3"
json=$("$LOCUSCTL" fg list --json --state "$STATE") || fail "fg list --json"
# holders_of FG: "site:port,..." of FG's holders in fg list --json
holders_of() {
    echo "$json" | tr '{' '\n' | awk -v fg="\"fg\":$1," '
        index($0, fg) == 1 { on = 1; next }
        /"fg":/ { on = 0 }
        on && /"site":/ { match($0, /"site":[0-9]+/); s = substr($0, RSTART + 7, RLENGTH - 7);
                          printf "%s%s", n++ ? "," : "", s }'
}
primary_of() {
    echo "$json" | tr '{' '\n' | awk -v fg="\"fg\":$1," 'index($0, fg) == 1 {
        match($0, /"primary":[0-9]+/); print substr($0, RSTART + 10, RLENGTH - 10) }'
}
[ "$(holders_of 1)" = "1,2,3" ] || fail "root holders: '$(holders_of 1)', expected 1,2,3 ($json)"
[ "$(holders_of 2)" = "1,2" ] || fail "home holders: '$(holders_of 2)', expected 1,2 ($json)"
[ "$(holders_of 3)" = "3" ] || fail "proj holders: '$(holders_of 3)', expected 3 ($json)"
[ "$(primary_of 1)" = 1 ] && [ "$(primary_of 2)" = 1 ] && [ "$(primary_of 3)" = 3 ] ||
    fail "primaries $(primary_of 1)/$(primary_of 2)/$(primary_of 3), expected 1/1/3 ($json)"
echo in-proj >"$MNT/s1/proj/f" || fail "write into proj through site 1"
[ "$(cat "$MNT/s2/proj/f")" = in-proj ] || fail "proj through site 2"
sj=$("$LOCUSCTL" sites --json --state "$STATE") || fail "locusctl sites --json"
for k in 1 2 3; do
    echo "$sj" | grep -q "{\"site\":$k,\"address\":\"127.0.0.$k\",\"port\":[0-9]*,\"state\":\"up\"" ||
        fail "sites --json does not show site $k up on 127.0.0.$k: $sj"
done
echo "$sj" | grep -q '"site":3,[^}]*"file_groups":\[1,3\]' || fail "sites --json: site 3 should hold [1,3]: $sj"
st=$("$LOCUSCTL" status --state "$STATE") || fail "locusctl status says not everything is up: $st"
echo "$st" | grep -Eq '^3 +proj +/proj +3 +127\.0\.0\.3:[0-9]+ +3\*$' || fail "status: proj row wrong: $st"
echo "$st" | grep -Eq '^1 +root +/ +1 +127\.0\.0\.1:[0-9]+ +1\*,2,3$' || fail "status: root row wrong: $st"

# ---- 4. the primary moves when its storaged dies ------------------------------------
mkdir -p "$WORK/m2"
"$MOUNT_BIN" "$WORK/m2" -f -o "key=$STATE/cluster.key,css=127.0.0.1:$(site_port 1 cssd),bind=127.0.0.2,site=2,timeout=3" \
    >"$WORK/mount-m2.log" 2>&1 &
M2=$!
track_pid "$M2"
track_mount "$WORK/m2"
wait_for 30 "the extra mount of site 2" is_mounted "$WORK/m2"
wait_for 30 "the extra mount of site 2 to answer" stat "$WORK/m2/."
p1=$(site_pid 1 storaged)
log "+ kill -9 site 1's locus-storaged (pid $p1)"
kill -9 "$p1"
wait_for 10 "site 1's storaged to end" dead "$p1"
# The CSS sees the connection close; its next answer names site 2.
wait_for 10 "the root group's primary to become site 2" \
    sh -c "'$LOCUSCTL' fg list --json --state '$STATE' | grep -q '\"fg\":1,[^}]*\"primary\":2'"
# Site 2 has its own (empty) copy of the root in this phase: what matters
# is that the mount (timeout=3 s) moves there instead of failing.
touch "$WORK/m2/after-kill" || fail "site 2's mount does not move to the new primary (see $WORK/mount-m2.log)"
ls "$WORK/m2/after-kill" >/dev/null || fail "site 2's mount: after-kill not there"
stop_pid "$M2" 10
fusermount3 -u "$WORK/m2" 2>/dev/null || true

# ---- 5. down, and up again from what the state remembers ------------------------------
run "$LOCUSCTL" dev down "$MNT" --state "$STATE"
for k in 1 2 3; do
    is_mounted "$MNT/s$k" && fail "$MNT/s$k is still mounted after dev down"
done
pgrep -f "$STATE/" >/dev/null && fail "programs of the cluster still run after dev down: $(pgrep -af "$STATE/")"
out=$("$LOCUSCTL" dev up "$MNT" --sites 2 --state "$STATE" 2>&1) && fail "dev up --sites 2 on a 3-site state succeeded"
case "$out" in *"has 3 site(s)"*) ;; *) fail "dev up --sites 2: unexpected message: $out" ;; esac
run timeout 120 "$LOCUSCTL" dev up "$MNT" --state "$STATE"
for k in 1 2 3; do
    wait_for 30 "$MNT/s$k after the restart" is_mounted "$MNT/s$k"
    check_bound "$k" storaged
done
[ "$(cat "$MNT/s2/hello")" = "written through site 2" ] || fail "hello lost across the restart"

# ---- 6. a site from a configuration file ------------------------------------------------
mkdir -p "$WORK/site4"
cat >"$WORK/site4/site.conf" <<EOF
; site 4, started with no other option
[site]
id = 4
address = 127.0.0.4
key = $STATE/cluster.key
[css]
address = 127.0.0.1:$(site_port 1 cssd)
[storage]
data = $WORK/site4/data
EOF
"$SS_BIN" --config "$WORK/site4/site.conf" --pid-file "$WORK/site4/pid" >"$WORK/site4.log" 2>&1 &
S4=$!
track_pid "$S4"
wait_for 30 "site 4 (from its configuration file) to register" \
    sh -c "'$LOCUSCTL' sites --json --state '$STATE' | grep -q '\"site\":4,\"address\":\"127.0.0.4\",\"port\":[0-9]*,\"state\":\"up\"'"
n=0
while read -r addr; do
    n=$((n + 1))
    [ "${addr%:*}" = 127.0.0.4 ] || fail "site 4 (configuration file) has a socket on $addr"
done < <(sockets_of "$S4")
[ "$n" -ge 2 ] || fail "site 4 should listen and talk to the CSS: $n socket(s)"
[ -z "$(ls "$WORK/site4/data" | grep '^fg-')" ] || fail "site 4 created a file group without --create-root"
stop_pid "$S4" 10
printf '[site]\nid = 5\nadress = 127.0.0.5\n' >"$WORK/bad.conf"
out=$("$SS_BIN" --config "$WORK/bad.conf" 2>&1) && fail "locus-storaged accepted a misspelt key"
case "$out" in *"bad.conf:3: unknown key 'adress'"*) ;; *) fail "bad configuration: unexpected message: $out" ;; esac
out=$("$CSS_BIN" --config "$WORK/bad.conf" 2>&1) && fail "locus-cssd accepted a misspelt key"
case "$out" in *"bad.conf:3: unknown key 'adress'"*) ;; *) fail "cssd, bad configuration: unexpected message: $out" ;; esac
cat >"$WORK/css5.conf" <<EOF
[site]
id = 5
address = 127.0.0.5
key = $STATE/cluster.key
[css]
state = $WORK/css5
EOF
"$CSS_BIN" --config "$WORK/css5.conf" --port-file "$WORK/css5.port" >"$WORK/css5.log" 2>&1 &
C5=$!
track_pid "$C5"
wait_for 30 "locus-cssd from a configuration file to listen" test -s "$WORK/css5.port"
[ "$(sockets_of "$C5")" = "127.0.0.5:$(cat "$WORK/css5.port")" ] ||
    fail "locus-cssd (configuration file) listens on '$(sockets_of "$C5")', expected 127.0.0.5"
stop_pid "$C5" 10

# ---- 7. a cut between site 2 and site 1 ----------------------------------------------------
mkdir -p "$WORK/m2"
"$MOUNT_BIN" "$WORK/m2" -f -o "key=$STATE/cluster.key,css=127.0.0.1:$(site_port 1 cssd),bind=127.0.0.2,site=2,timeout=3" \
    >"$WORK/mount-m2b.log" 2>&1 &
M2=$!
track_pid "$M2"
wait_for 30 "the extra mount of site 2" is_mounted "$WORK/m2"
wait_for 30 "the extra mount of site 2 to answer" stat "$WORK/m2/hello"
net_cut "127.0.0.2" "127.0.0.1"
err=$(cat "$WORK/m2/hello" 2>&1 >/dev/null; echo "rc=$?")
case "$err" in
    *"Connection timed out"*|*"No route to host"*) ;;
    *) fail "site 2's mount across the cut: expected ETIMEDOUT or EHOSTUNREACH, got: $err" ;;
esac
echo through-site-1 >"$MNT/s1/during-cut" || fail "site 1's mount fails during a cut that does not concern it"
[ "$(cat "$MNT/s1/hello")" = "written through site 2" ] || fail "site 1 cannot read during the cut"
net_heal
wait_for 30 "site 2's mount to work again after net_heal" grep -q "written through site 2" "$WORK/m2/hello"
[ "$(cat "$WORK/m2/during-cut")" = through-site-1 ] || fail "site 2 does not see what site 1 wrote during the cut"
stop_pid "$M2" 10
fusermount3 -u "$WORK/m2" 2>/dev/null || true

pass
