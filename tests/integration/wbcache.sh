#!/usr/bin/env bash
# wbcache.sh -- the paths the kernel's writeback cache takes (locusfs-mount
# -o writeback, off by default; docs/mount.md "Writeback cache"), checked
# through a second mount of the same cluster that has the files cached
# from before each change:
#   1  O_APPEND from two descriptors (the kernel places appends);
#   2  partial-page writes into existing data (the kernel reads the page
#      first, also through an O_WRONLY descriptor), read back elsewhere;
#   3  a write past the end: the size through the same mount at once, and
#      through the other one (which had the old size) once it opens the
#      file after the close; then the file rewritten shorter: the other
#      mount reads it, and stats the new size after that open;
#   4  truncate while pages are dirty (ftruncate, and truncate(2) by path
#      from another process);
#   5  mmap shared writes, msync, read from the other mount;
#   6  write then fchmod / fstat before close (tar, cp -p, install);
#   7  ENOSPC of the storage site: write(2) succeeds into the cache, and
#      fsync and close fail with ENOSPC; the file keeps what it had, and
#      this mount reads that, not the pages it could not write;
#   8  O_TRUNC opens racing truncate(2) of another thread: the writer's
#      kernel keeps the size the file has (run before 7).
# With -o nowriteback (WBCACHE_OPTS=nowriteback) the same checks hold.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init wbcache
WBCACHE_OPTS=${WBCACHE_OPTS:-writeback}
# Every mount of the test, dev up's and the second one, with the option.
wrap_daemons fused/locusfs-mount -o "$WBCACHE_OPTS"

cluster_up
M1=$MNT
M2=$WORK/m2
mount_more "$M2" "$WBCACHE_OPTS"
mkdir "$M1/w" || fail "mkdir"

# py CODE ARGS...: a short python3 program on the mount (errors fail the test).
py() {
    local code=$1
    shift
    python3 -c "import os, sys, mmap
$code" "$@" || fail "python step failed: $code"
}

# same A B: files A and B have the same bytes.
same() { cmp -s "$1" "$2"; }

# ---- 1: O_APPEND from two descriptors ---------------------------------------
: >"$M1/w/app" || fail "create app"
cat "$M2/w/app" >/dev/null
exec 3>>"$M1/w/app" 4>>"$M1/w/app"
printf 'a1\n' >&3
printf 'b1\n' >&4
printf 'a2-longer\n' >&3
printf 'b2\n' >&4
exec 3>&- 4>&-
printf 'a1\nb1\na2-longer\nb2\n' >"$WORK/app.ref"
same "$M1/w/app" "$WORK/app.ref" || fail "O_APPEND: $(od -c "$M1/w/app" | head -5)"
wait_for 10 "the other mount to see the appended file" same "$M2/w/app" "$WORK/app.ref"
log "1: O_APPEND from two descriptors lands in order, seen by the other mount"

# ---- 2: partial pages into existing data -------------------------------------
head -c 20000 /dev/urandom >"$WORK/pp.ref" || fail "random data"
cp "$WORK/pp.ref" "$M1/w/pp" || fail "cp pp"
cat "$M2/w/pp" >/dev/null
edit='
fd = os.open(sys.argv[1], int(sys.argv[2]))
os.pwrite(fd, b"X" * 100, 5000)
os.pwrite(fd, b"YZ", 12287)
os.pwrite(fd, b"!", 19999)
os.close(fd)'
py "$edit" "$M1/w/pp" "$(python3 -c 'import os; print(os.O_WRONLY)')"
py "$edit" "$WORK/pp.ref" "$(python3 -c 'import os; print(os.O_WRONLY)')"
same "$M1/w/pp" "$WORK/pp.ref" || fail "partial-page writes through O_WRONLY: wrong content here"
wait_for 10 "the other mount to see the partial-page writes" same "$M2/w/pp" "$WORK/pp.ref"
log "2: partial-page writes through an O_WRONLY descriptor, seen by the other mount"

# ---- 3: write past the end, then stat ----------------------------------------
printf 'abc' >"$M1/w/grow"
[ "$(stat -c %s "$M2/w/grow")" = 3 ] || fail "grow: the other mount does not see 3 bytes"
[ "$(cat "$M2/w/grow")" = abc ] || fail "grow: the other mount reads '$(cat "$M2/w/grow")'"
py '
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"end", 100000)
st = os.stat(sys.argv[1]).st_size
if st != 100003 or os.fstat(fd).st_size != 100003:
    sys.exit("size %d while open, not 100003" % st)
os.close(fd)' "$M1/w/grow"
[ "$(stat -c %s "$M1/w/grow")" = 100003 ] || fail "grow: size $(stat -c %s "$M1/w/grow") here after close"
{ printf 'abc'; head -c $((100000 - 3)) /dev/zero; printf 'end'; } >"$WORK/grow.ref"
size_is() { [ "$(stat -c %s "$1")" = "$2" ]; }
# (Close-to-open: the other mount's next open tells its kernel the size.)
wait_for 10 "the other mount to read the grown file" same "$M2/w/grow" "$WORK/grow.ref"
size_is "$M2/w/grow" 100003 || fail "grow: the other mount stats $(stat -c %s "$M2/w/grow") bytes after its open"
# The other mount appends in turn: this one, which wrote it, learns the size.
printf 'more' >>"$M2/w/grow"
cat "$WORK/grow.ref" >"$WORK/grow2.ref"; printf 'more' >>"$WORK/grow2.ref"
wait_for 10 "this mount to read the other's append" same "$M1/w/grow" "$WORK/grow2.ref"
size_is "$M1/w/grow" 100007 || fail "grow: this mount stats $(stat -c %s "$M1/w/grow") bytes after its open"
log "3: a write past the end: the size here at once, in the other mount after its open, and back"

# ---- 3b: the file shrinks elsewhere --------------------------------------------
# The kernel of the other mount holds the 100007-byte inode and never
# lowers a size by itself: it must be made to forget it.
printf 'short\n' >"$M1/w/grow"
printf 'short\n' >"$WORK/short.ref"
wait_for 10 "the other mount to read the short file (it reads $(wc -c <"$M2/w/grow") bytes)" \
    same "$M2/w/grow" "$WORK/short.ref"
size_is "$M2/w/grow" 6 || fail "shrink: the other mount stats $(stat -c %s "$M2/w/grow") bytes after its open"
: >"$M1/w/grow"
wait_for 10 "the other mount to read an empty file" same "$M2/w/grow" /dev/null
size_is "$M2/w/grow" 0 || fail "shrink to 0: the other mount stats $(stat -c %s "$M2/w/grow") bytes"
log "3b: a file rewritten shorter elsewhere: the other mount reads it and stats the new size"

# ---- 4: truncate while dirty -------------------------------------------------
: >"$M1/w/tr"
cat "$M2/w/tr" >/dev/null
trunc='
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
os.pwrite(fd, b"A" * 20000, 0)
os.ftruncate(fd, 5000)
os.pwrite(fd, b"B" * 100, 8000)
if os.fstat(fd).st_size != 8100:
    sys.exit("size %d after ftruncate and write, not 8100" % os.fstat(fd).st_size)
os.truncate(p, 8050)              # by path, the descriptor still dirty
os.pwrite(fd, b"C" * 10, 3000)
os.close(fd)'
py "$trunc" "$M1/w/tr"
: >"$WORK/tr.ref"
py "$trunc" "$WORK/tr.ref"
same "$M1/w/tr" "$WORK/tr.ref" || fail "truncate while dirty: wrong content here"
wait_for 10 "the other mount to see the truncated file" same "$M2/w/tr" "$WORK/tr.ref"
log "4: ftruncate and truncate(2) while pages are dirty"

# ---- 5: mmap write, msync, read elsewhere -------------------------------------
head -c 16384 /dev/zero | tr '\0' a >"$M1/w/mm" || fail "mm"
cat "$M2/w/mm" >/dev/null
py '
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 16384)
m[100:105] = b"hello"
m[9000:9003] = b"xyz"
m.flush()
os.close(fd)
ok = open(sys.argv[2], "rb").read()
exp = b"a" * 100 + b"hello" + b"a" * (9000 - 105) + b"xyz" + b"a" * (16384 - 9003)
if ok != exp:
    sys.exit("the other mount does not see the msync-ed mmap writes")
m.close()' "$M1/w/mm" "$M2/w/mm"
log "5: mmap writes after msync are read by the other mount"

# ---- 6: write then fchmod and fstat before close -----------------------------
py '
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"q" * 5000)
os.fchmod(fd, 0o600)
if os.fstat(fd).st_size != 5000:
    sys.exit("fstat after fchmod: %d bytes" % os.fstat(fd).st_size)
os.utime(fd, (1000000000, 1000000000))
os.close(fd)
st = os.stat(sys.argv[1])
if st.st_size != 5000 or st.st_mode & 0o777 != 0o600 or int(st.st_mtime) != 1000000000:
    sys.exit("after close: %d bytes, mode %o, mtime %d" % (st.st_size, st.st_mode & 0o777, st.st_mtime))' \
    "$M1/w/fchmod"
[ "$(stat -c '%s %a %Y' "$M2/w/fchmod")" = "5000 600 1000000000" ] ||
    fail "write+fchmod+utime: the other mount sees $(stat -c '%s %a %Y' "$M2/w/fchmod")"
log "6: write, fchmod, futimens before close: size, mode and mtime kept"

# ---- 8: O_TRUNC opens racing truncate(2) ----------------------------------------
# (Before 7, which leaves the storage site out of space.)  With atomic
# O_TRUNC the kernel set its size to 0 after the OPEN again, without
# asking: a truncate(2) between the two was lost to this mount's kernel for
# good (it keeps its own size), not to the file.
python3 - "$M1/w" "$M2/w" <<'EOF' || fail "O_TRUNC racing truncate(2): this mount's size differs from the file's"
import os, random, sys, threading, time
here, there = sys.argv[1], sys.argv[2]
bad = []
for i in range(8):
    p = "%s/race%d" % (here, i)
    open(p, "wb").close()
    stop = time.time() + 0.4
    def reopen():
        while time.time() < stop:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.write(fd, b"y" * random.randint(0, 8192))
            os.close(fd)
    def truncate():
        while time.time() < stop:
            os.truncate(p, random.randint(0, 256 * 1024))
    ts = [threading.Thread(target=f) for f in (reopen, truncate)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    mine = os.stat(p).st_size
    theirs = os.stat("%s/race%d" % (there, i)).st_size     # never looked up there before
    if mine != theirs:
        bad.append("race%d: %d here, %d in the file" % (i, mine, theirs))
if bad:
    sys.exit("; ".join(bad))
EOF
log "8: O_TRUNC opens racing truncate(2): this mount keeps the file's size"

# ---- 7: ENOSPC at fsync and close ---------------------------------------------
printf 'old content\n' >"$M1/w/full" || fail "full"
cluster_down
kill "$MORE_PID" 2>/dev/null; umount -l "$M2" 2>/dev/null || true
# Every write now finds the data directory below the reserve.
wrap_daemons storage/locus-storaged --reserve $((1 << 62))
cluster_up
py '
import errno
for how in ("fsync", "close"):
    fd = os.open(sys.argv[1], os.O_WRONLY)
    os.pwrite(fd, b"n" * 65536, 0)     # into the cache: succeeds
    try:
        if how == "fsync":
            os.fsync(fd)
        os.close(fd)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            sys.exit("%s: %s, not ENOSPC" % (how, e))
        if how == "fsync":
            try:
                os.close(fd)
            except OSError:
                pass
        continue
    sys.exit("%s reported no error with the storage site out of space" % how)' "$M1/w/full"
# The pages that could not be written, and the size they gave, are not
# read back as the file's: the next open drops them.
printf 'old content\n' >"$WORK/full.ref"
same "$M1/w/full" "$WORK/full.ref" ||
    fail "after ENOSPC this mount reads $(wc -c <"$M1/w/full") bytes: '$(head -c 40 "$M1/w/full")'"
log "7: ENOSPC of the storage site is returned by fsync and by close"

pass
