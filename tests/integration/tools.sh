#!/usr/bin/env bash
# tools.sh -- real tools writing into the mount, checked at once (no
# waiting, no cache drop in between): what they do on one descriptor --
# write, then fchmod/fchown/futimens before close -- must keep the data.
#
#  1. fdseq: the system call sequences themselves (write + fchmod + fstat/
#     pread on the same fd; O_APPEND 5000 + fchmod + 100 = 5100 bytes in
#     order; an append to an existing file across fchmod; stat right after
#     close; ftruncate between);
#  2. tar cf of /usr/include, tar xf into the mount, then at once
#     sha256sum -c against the checksums of the source, and the modes and
#     mtimes tar restored;
#  3. cp -a and cp -p of a tree, install -m 0755: content, modes, mtimes;
#  4. rsync -a, git init/add/commit/fsck.
# TOOLS_SRC names another source tree than /usr/include.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init tools
find_helper FDSEQ fdseq

src=${TOOLS_SRC:-/usr/include}
[ -d "$src" ] || skip "no $src to copy"
command -v sha256sum >/dev/null || skip "sha256sum is not installed"

cluster_up

# sums DIR: "sha256  ./path" for every file under DIR, sorted.
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
# meta DIR [FMT]: path, type, mode, mtime (FMT: %T@ in ns, default, or %Ts
# in seconds) and, for files, size of everything under DIR but symlinks.
meta() {
    (cd "$1" && find . -mindepth 1 -printf "%p %y %m ${2:-%T@} %s\n" | sort |
        awk '$2 == "f" { print; next } $2 != "l" { print $1, $2, $3, $4 }')
}

# check_copy WHAT SRC DST [MTIME_FMT]: DST has SRC's content, modes and
# mtimes (to the precision of MTIME_FMT, see meta; not of symlinks: not
# every tool sets them; not the sizes of directories, which differ between
# filesystems).
check_copy() {
    local what=$1 from=$2 to=$3 fmt=${4:-%T@}
    sums "$from" >"$WORK/src.sums" || fail "$what: checksums of $from"
    (cd "$to" && sha256sum -c --quiet --strict "$WORK/src.sums") >"$WORK/check.out" 2>&1 || {
        head -n 30 "$WORK/check.out" >&2
        fail "$what: $(grep -c 'FAILED' "$WORK/check.out") file(s) differ right after the copy"
    }
    meta "$from" "$fmt" >"$WORK/src.meta"
    meta "$to" "$fmt" >"$WORK/dst.meta"
    if ! diff -u "$WORK/src.meta" "$WORK/dst.meta" >"$WORK/meta.diff"; then
        head -n 30 "$WORK/meta.diff" >&2
        fail "$what: modes, sizes or mtimes differ"
    fi
    log "$what: $(wc -l <"$WORK/src.sums") files right"
}

# 1. the sequences
mkdir -p "$MNT/seq" || fail "mkdir seq"
run "$FDSEQ" "$MNT/seq"

# 2. tar
run tar cf "$WORK/src.tar" -C "$(dirname "$src")" "$(basename "$src")"
mkdir -p "$MNT/tar" || fail "mkdir tar"
run tar xf "$WORK/src.tar" -C "$MNT/tar"
# (tar keeps whole seconds)
check_copy "tar xf" "$src" "$MNT/tar/$(basename "$src")" %Ts

# 3. cp -a, cp -p, install
sub=$src
[ -d "$src/linux" ] && sub=$src/linux
run cp -a "$sub" "$MNT/cpa"
check_copy "cp -a" "$sub" "$MNT/cpa"
mkdir -p "$MNT/cpp" || fail "mkdir cpp"
files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$sub" -maxdepth 1 -type f -print0 | head -z -n 200)
[ "${#files[@]}" -gt 0 ] || fail "no files in $sub"
log "+ cp -p (${#files[@]} files of $sub) $MNT/cpp/"
cp -p "${files[@]}" "$MNT/cpp/" || fail "cp -p into the mount failed"
mkdir -p "$WORK/cpp.src" && cp -p "${files[@]}" "$WORK/cpp.src/" || fail "local cp -p"
check_copy "cp -p" "$WORK/cpp.src" "$MNT/cpp"
run install -m 0755 "${files[0]}" "$MNT/installed"
[ "$(stat -c %a "$MNT/installed")" = 755 ] || fail "install -m 0755: mode $(stat -c %a "$MNT/installed")"
[ "$(stat -c %s "$MNT/installed")" = "$(stat -c %s "${files[0]}")" ] ||
    fail "install: size $(stat -c %s "$MNT/installed") right after, source $(stat -c %s "${files[0]}")"
cmp "${files[0]}" "$MNT/installed" || fail "install: content differs"

# 4. rsync, git
# scripts/deps.sh installs both: a missing one is a failure, not a skip.
command -v rsync >/dev/null || fail "rsync is not installed (scripts/deps.sh installs it)"
command -v git >/dev/null || fail "git is not installed (scripts/deps.sh installs it)"
run rsync -a "$sub/" "$MNT/rsync/"
check_copy "rsync -a" "$sub" "$MNT/rsync"
g=$MNT/git
mkdir -p "$g" && cp -p "${files[@]}" "$g/" || fail "git: copy in"
run git -C "$g" -c init.defaultBranch=main init -q
run git -C "$g" -c user.name=t -c user.email=t@example.invalid add -A
run git -C "$g" -c user.name=t -c user.email=t@example.invalid commit -q -m files
run git -C "$g" fsck --strict --no-progress
[ -z "$(git -C "$g" status --porcelain)" ] || fail "git status is not clean after commit"
pass
