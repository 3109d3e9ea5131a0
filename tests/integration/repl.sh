#!/usr/bin/env bash
# repl.sh -- replication across three sites on their own loopback
# addresses (issue #8, docs/replication.md): real daemons, real mounts.
#  1. Files, directories, links, xattrs and a big sparse file written
#     through site 1's mount and a tar of /usr/include/linux through site 2's
#     are read back through site 3's; after `locusctl sync` every copy of
#     every file, walked at each site on its own copy (`locusctl copies
#     --tree`), is the same: same vector, size, content; a read-only open
#     on site 2 reads site 2's own copy; `locusctl status` shows one
#     primary and two current copies.
#  2. kill -9 of site 2's storage daemon during a write workload (itool
#     writer through site 1's mount): the workload goes on, site 2 restarts
#     (`locusctl dev up`) and catches up, the copies converge, and the
#     written files match the writer's log (itool verify-writer).
#  3. Site 3 stopped while files are deleted and created: after it returns
#     the deletions reach it and nothing it held comes back.
#  4. kill -9 of the CSS (site 1's locus-cssd) during writes (itool writer
#     through site 2's mount, and files made after the restart): the
#     workload goes on after it restarts, the files match the writer's
#     log, the copies converge.
#  5. kill -9 of the primary (site 1's storaged) during a write workload
#     through site 3's mount: the writer stops itself half-way through a
#     file (itool --stop-file: its write session open at site 1) while
#     the copies sync, so that no acknowledged commit exists at site 1
#     alone (docs/replication.md "Failover": such commits need #9's
#     reconciliation), and goes on (SIGCONT) right after the kill: that
#     file's generation fails with EIO at once (itool logs F), the mounts
#     move to site 2, the workload goes on there; site 1
#     restarts, catches up, registers, and does not take the primary role
#     back from site 2 while the writer goes on; the files match the
#     writer's log through every site's mount, and the copies converge.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init repl
find_helper ITOOL itool

S1=$MNT/s1 S2=$MNT/s2 S3=$MNT/s3

up() { sites_up 3; }
in_sync() { run "$LOCUSCTL" sync --state "$STATE" --timeout "${1:-120}"; }
same_tree() {
    local out rc=0
    out=$("$LOCUSCTL" copies "${1:-/}" --tree --state "$STATE" 2>&1) || rc=$?
    printf '%s\n' "$out" | tail -n 25 >&2
    [ "$rc" -eq 0 ] || fail "the copies of ${1:-/} differ (see above)"
    [ "$(printf '%s\n' "$out" | grep -c ' files under ')" -eq 3 ] || fail "not 3 copies of ${1:-/}"
}
site_ss_pid() { site_pid "$1" storaged; }
names=(w0000 w0001 w0002 w0003)
# start_writer DIR LOG MAX [ARGS...]: DIR with generation 0 of every name,
# then the writer (pid in wpid; its output in LOG's .out) until it
# committed 10.
start_writer() {
    mkdir "$1" || fail "mkdir $1"
    run "$ITOOL" mkfiles "$1" w ${#names[@]} --min 1000 --max "$3"
    "$ITOOL" writer "$1" "$2" "${names[@]}" --create c --min 1000 --max "$3" "${@:4}" \
        >"${2%.log}.out" 2>&1 &
    wpid=$!
    track_pid "$wpid"
    wait_for 60 "the writer to commit" eval "[ \"\$(count_lines '$2' O)\" -ge 10 ]"
}
# stopped PID: PID is stopped (SIGSTOP).
stopped() { [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = T ]; }

up

# ---- 1. write on one site, read on another -------------------------------------
mkdir -p "$S1/dir/sub" || fail "mkdir through site 1"
printf 'hello\n' >"$S1/dir/f" || fail "write through site 1"
ln -s f "$S1/dir/l" || fail "symlink"
ln "$S1/dir/f" "$S1/dir/hard" || fail "hard link"
run "$ITOOL" setxattr "$S1/dir/f" user.k value1
head -c 3000000 /dev/urandom >"$WORK/big.src"
dd if="$WORK/big.src" of="$S1/big" bs=1M conv=fsync status=none || fail "big write"
dd if="$WORK/big.src" of="$S1/big" bs=1M seek=40 conv=notrunc,fsync status=none || fail "big write at 40 MiB"
tar -C /usr/include -cf "$WORK/inc.tar" linux || fail "tar of /usr/include/linux"
mkdir "$S2/inc" && tar -C "$S2/inc" -xf "$WORK/inc.tar" || fail "untar through site 2"
cmp "$S3/dir/f" "$S1/dir/f" || fail "site 3 reads another content than site 1 wrote"
[ "$(readlink "$S3/dir/l")" = f ] || fail "symlink through site 3"
in_sync
same_tree /
same_tree /inc
(cd "$S3/inc" && tar -cf - linux | tar -tf - | wc -l) >"$WORK/n3" || fail "list through site 3"
[ "$(cat "$WORK/n3")" -eq "$(tar -tf "$WORK/inc.tar" | wc -l)" ] || fail "site 3 lists another /inc"
# A read-only open at a site holding a current copy reads it there: site
# 2's mount talks to site 2's storaged (it had no reason to before).
p2=$(site_port 2 storaged) || fail "no port of site 2's storaged"
m2=$(site_pid 2 mount) || fail "no pid of site 2's mount"
cmp "$S2/big" "$WORK/big.src" -n 3000000 || fail "site 2 reads another /big"
ss -tnp state established "( dport = :$p2 )" | grep -q "pid=$m2," ||
    fail "site 2's mount did not read its own copy: $(ss -tnp state established "( dport = :$p2 )")"
# status: each copy's state and how many files it is behind the primary
out=$("$LOCUSCTL" status --json --state "$STATE") || true
[ "$(printf '%s\n' "$out" | grep -o '"state":"primary"' | wc -l)" -eq 1 ] || fail "status: not one primary: $out"
[ "$(printf '%s\n' "$out" | grep -o '"state":"current","seq":[0-9]*,"pulled_from_primary":[0-9]*,"files_behind":0' |
     wc -l)" -eq 2 ] || fail "status: not two current copies: $out"
out=$("$LOCUSCTL" copies /big --json --state "$STATE") || fail "copies of /big differ: $out"
printf '%s\n' "$out" | grep -q '"same":true' || fail "copies of /big: $out"
[ "$(printf '%s\n' "$out" | grep -o '"ok":true' | wc -l)" -eq 3 ] || fail "not 3 copies of /big: $out"

# ---- 2. kill -9 of a storage site during a write workload ---------------------
start_writer "$S1/busy" "$WORK/writer.log" 400000
pid2=$(site_ss_pid 2) || fail "no pid of site 2's storaged"
log "+ kill -9 site 2's storaged ($pid2)"
kill -9 "$pid2"
n=$(count_lines "$WORK/writer.log" O)
wait_for 60 "the writer to go on without site 2" eval '[ "$(count_lines "$WORK/writer.log" O)" -ge $((n + 10)) ]'
up                                      # restarts what is down
n=$(count_lines "$WORK/writer.log" O)
wait_for 60 "the writer to go on after site 2 came back" \
    eval '[ "$(count_lines "$WORK/writer.log" O)" -ge $((n + 5)) ]'
kill -TERM "$wpid"
wait "$wpid" || fail "the writer failed: $(tail -n 5 "$WORK/writer.out")"
run "$ITOOL" verify-writer "$S3/busy" "$WORK/writer.log" "${names[@]}" --create c --min 1000 --max 400000
in_sync
same_tree /busy

# ---- 3. a site away while files are deleted and created --------------------------
mkdir "$S1/del" && run "$ITOOL" mkfiles "$S1/del" d 30 --min 1 --max 20000
in_sync
pid3=$(site_ss_pid 3) || fail "no pid of site 3's storaged"
log "+ kill -9 site 3's storaged ($pid3)"
kill -9 "$pid3"
wait_for 30 "site 3's storaged to be gone" dead "$pid3"
"$LOCUSCTL" status --state "$STATE" >"$WORK/status3" || true
grep -Eq '^1 +3 .*unreachable' "$WORK/status3" || fail "status does not show site 3's copy unreachable: $(cat "$WORK/status3")"
for i in $(seq 0 2 29); do rm -f "$S1/del/d$(printf %04d "$i")" || fail "rm"; done
rm -rf "$S1/dir/sub" "$S1/dir/hard" || fail "rm -r"
run "$ITOOL" mkfiles "$S1/del" n 10 --min 1 --max 20000
up
in_sync
same_tree /del
same_tree /dir
ls "$S3/del" >"$WORK/del3" || fail "ls through site 3"
[ "$(grep -c '^d' "$WORK/del3")" -eq 15 ] || fail "deleted files came back: $(tr '\n' ' ' <"$WORK/del3")"
[ "$(grep -c '^n' "$WORK/del3")" -eq 10 ] || fail "created files missing on site 3"
[ ! -e "$S3/dir/sub" ] || fail "a removed directory came back"
out=$("$LOCUSCTL" copies /dir/f --json --state "$STATE") || fail "copies of /dir/f differ: $out"

# ---- 4. kill -9 of the CSS -----------------------------------------------------------
mkdir "$S2/css" || fail mkdir
start_writer "$S2/cssw" "$WORK/writer4.log" 100000
pidc=$(site_pid 1 cssd) || fail "no pid of the CSS"
log "+ kill -9 the CSS ($pidc)"
kill -9 "$pidc"
wait_for 30 "the CSS to be gone" dead "$pidc"
up
run "$ITOOL" mkfiles "$S2/css" x 20 --min 1 --max 100000
run "$ITOOL" verify "$S3/css" x 20 --min 1 --max 100000
n=$(count_lines "$WORK/writer4.log" O)
wait_for 60 "the writer to go on after the CSS came back" \
    eval '[ "$(count_lines "$WORK/writer4.log" O)" -ge $((n + 10)) ]'
kill -TERM "$wpid"
wait "$wpid" || fail "the writer failed: $(tail -n 5 "$WORK/writer4.out")"
in_sync
run "$ITOOL" verify-writer "$S3/cssw" "$WORK/writer4.log" "${names[@]}" --create c --min 1000 --max 100000
same_tree /

# ---- 5. kill -9 of the primary during a write workload ---------------------------
start_writer "$S3/fail" "$WORK/writer5.log" 200000 --stop-file "$WORK/stop5"
wait_for 30 "site 1 to be the primary" root_primary_is 1
touch "$WORK/stop5"
wait_for 60 "the writer to stop half-way through a file" stopped "$wpid"
in_sync
open5=$(grep '^B ' "$WORK/writer5.log" | tail -n 1)
pid1=$(site_ss_pid 1) || fail "no pid of site 1's storaged"
log "+ kill -9 site 1's storaged, the primary ($pid1), the writer stopped in: $open5"
kill -9 "$pid1"
kill -CONT "$wpid"
n=$(count_lines "$WORK/writer5.log" O)
wait_for 60 "the writer to go on at the new primary" eval '[ "$(count_lines "$WORK/writer5.log" O)" -ge $((n + 10)) ]'
up
wait_for 60 "site 1 to be registered again" registered 1
n=$(count_lines "$WORK/writer5.log" O)
wait_for 60 "the writer to go on after site 1 came back" \
    eval '[ "$(count_lines "$WORK/writer5.log" O)" -ge $((n + 10)) ]'
root_primary_is 2 || fail "site 1 took the primary role back from site 2 during the writes"
kill -TERM "$wpid"
wait "$wpid" || fail "the writer failed: $(tail -n 5 "$WORK/writer5.out")"
grep -h '^F' "$WORK/writer5.log" >&2 || true
# The file half written at site 1: its session is gone with site 1, and
# the rest of it never went to site 2 (which never saw its truncate).
grep -Eq "^F ${open5#B } (write|fsync|close) EIO\$" "$WORK/writer5.log" ||
    fail "the generation open at site 1 when it died ($open5) did not fail with EIO"
in_sync
for k in 2 3 1; do
    run "$ITOOL" verify-writer "$MNT/s$k/fail" "$WORK/writer5.log" "${names[@]}" --create c \
        --min 1000 --max 200000
done
same_tree /fail
if grep -h "changed concurrently" "$STATE"/site*/log/storaged.log >&2; then
    fail "copies were changed concurrently (a conflict) during the failover"
fi

# ---- 6. only the primary takes changes ------------------------------------------
# Site 1 came back as a secondary (site 2 kept the role).  A mount whose
# mount table still named site 1 would send it its changes: site 1 must
# refuse them before doing anything ("not the primary", EREMCHG, storage/
# ss_srv_int.h [S9]) so that the mount asks the CSS again, instead of
# committing a change the primary does not have (a conflict).
find_helper FSREQ fsreq
ans=$("$FSREQ" "127.0.0.1:$(site_port 1 storaged)" "$STATE/cluster.key" mkdir 1 1 stale6) ||
    fail "no answer from site 1's storaged"
eremchg=$(python3 -c 'import errno; print(errno.EREMCHG)')
case "$ans" in "status -$eremchg "*"site 2 is the primary"*) ;;
    *) fail "site 1, not the primary, answered a mkdir with: $ans" ;; esac
ans=$("$FSREQ" "127.0.0.2:$(site_port 2 storaged)" "$STATE/cluster.key" mkdir 1 1 stale6) ||
    fail "no answer from site 2's storaged"
[ "$ans" = "status 0" ] || fail "site 2, the primary, answered a mkdir with: $ans"
in_sync
[ -d "$MNT/s1/stale6" ] || fail "the directory made at the primary is not seen through site 1's mount"
ans=$("$FSREQ" "127.0.0.2:$(site_port 2 storaged)" "$STATE/cluster.key" rmdir 1 1 stale6)
[ "$ans" = "status 0" ] || fail "site 2 answered an rmdir with: $ans"

pass
