#!/usr/bin/env bash
# install.sh -- scripts/install.sh, then the installed programs: a dev
# cluster run by the installed locusctl, and its file system mounted the
# two ways an administrator would, through mount(8):
#
#  1. scripts/install.sh --destdir WORK/root stages every program, the
#     `locusfs` mount helper link and the man pages under WORK/root/PREFIX
#     (the live system is never written).
#  2. The installed locusctl (no LOCUS_BIN_DIR, a PATH without the build
#     tree) starts the installed daemons and mount: it finds PREFIX/sbin
#     beside PREFIX/bin.
#  3. `mount -t fuse.locusfs locusfs:STATE DIR -o key=...,css_port_file=...`
#     and an fstab line (`mount -T FSTAB DIR`, a private fstab: /etc/fstab
#     is never read or written) both mount the cluster; files written
#     through one mount are read through the others; umount ends each
#     helper process.
#
# mount(8) clears PATH before it runs /sbin/mount.fuse3, which then finds
# the helper `locusfs` only in the shell's default path (/usr/local/sbin
# first).  So step 3 runs in a private mount namespace (unshare -m) where
# the staged PREFIX/sbin is bind-mounted on /usr/local/sbin: what a real
# `scripts/install.sh` (prefix /usr/local) gives, without touching the
# machine.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- step 3, run by the test itself inside the private mount namespace
if [ "${1:-}" = --in-namespace ]; then
    LIB_NAME=install-ns
    # Unmount on the way out, so the helpers exit and the namespace goes.
    trap 'for m in "$WORK/m1" "$WORK/m2"; do is_mounted "$m" && umount -l "$m"; done' EXIT
    run mount --bind "$IN_SBIN" /usr/local/sbin
    [ -x /usr/local/sbin/locusfs ] || fail "no locusfs helper in /usr/local/sbin after the bind mount"

    run mount -t fuse.locusfs "locusfs:$STATE" "$WORK/m1" \
        -o "key=$STATE/cluster.key,css_port_file=$STATE/run/cssd.port"
    is_mounted "$WORK/m1" || fail "mount -t fuse.locusfs did not mount $WORK/m1"
    [ "$(findmnt -n -o FSTYPE --mountpoint "$WORK/m1")" = fuse.locusfs ] || fail "$WORK/m1 is not fuse.locusfs"
    [ "$(findmnt -n -o SOURCE --mountpoint "$WORK/m1")" = "locusfs:$STATE" ] || fail "$WORK/m1 has the wrong source"
    [ "$(cat "$WORK/m1/hello")" = "from dev up" ] || fail "$WORK/m1/hello does not hold what dev up's mount wrote"
    echo "from mount -t" >"$WORK/m1/by-mount-t" || fail "cannot write through $WORK/m1"

    printf 'locusfs:%s %s fuse.locusfs key=%s,css_port_file=%s,noauto,_netdev 0 0\n' \
        "$STATE" "$WORK/m2" "$STATE/cluster.key" "$STATE/run/cssd.port" >"$WORK/fstab"
    run mount -T "$WORK/fstab" "$WORK/m2"
    is_mounted "$WORK/m2" || fail "mount -T FSTAB did not mount $WORK/m2"
    [ "$(cat "$WORK/m2/hello")" = "from dev up" ] || fail "$WORK/m2/hello does not hold what dev up's mount wrote"
    [ "$(cat "$WORK/m2/by-mount-t")" = "from mount -t" ] || fail "$WORK/m2 does not see the file written via $WORK/m1"
    echo "from fstab" >"$WORK/m2/by-fstab" || fail "cannot write through $WORK/m2"
    [ "$(cat "$MNT/by-fstab")" = "from fstab" ] || fail "dev up's mount does not see the file written via $WORK/m2"

    # The helpers are the installed program (argv[0] "locusfs"), one per mount.
    for m in m1 m2; do
        pid=$(pgrep -f -x "locusfs locusfs:$STATE $WORK/$m -o .*") || fail "no helper process for $WORK/$m"
        [ "/proc/$pid/exe" -ef "$IN_SBIN/locusfs-mount" ] ||
            fail "the helper of $WORK/$m runs $(readlink "/proc/$pid/exe"), not the installed locusfs-mount"
        run umount "$WORK/$m"
        ! is_mounted "$WORK/$m" || fail "$WORK/$m still mounted after umount"
        wait_for 30 "the helper of $WORK/$m (pid $pid) to exit after umount" dead "$pid"
    done
    LIB_DONE=pass
    exit 0
fi

lib_init install
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
command -v findmnt >/dev/null || skip "findmnt (util-linux) is not installed"
command -v python3 >/dev/null || skip "python3 is not installed (meson needs it anyway)"
[ -x /sbin/mount.fuse3 ] || skip "/sbin/mount.fuse3 is missing (package fuse3)"
[ -d /usr/local/sbin ] || skip "/usr/local/sbin does not exist (the namespace binds the helper there)"
src_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${MESON_BUILD_ROOT:-}" ] || fail "MESON_BUILD_ROOT is not set"

# Helper processes left by a failed step 3 are stopped at exit.
install_cleanup() {
    local pid
    for pid in $(pgrep -f -- "^locusfs locusfs:$STATE $WORK/m[12] " 2>/dev/null); do
        stop_pid "$pid" 10
    done
    return 0
}
trap 'rc=$?; install_cleanup; (exit $rc); lib_cleanup' EXIT

# ---- 1. install into a staging directory
DEST=$WORK/root
run "$src_root/scripts/install.sh" --builddir "$MESON_BUILD_ROOT" --destdir "$DEST"
read -r prefix bindir sbindir mandir < <(meson introspect "$MESON_BUILD_ROOT" --buildoptions |
    python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["bindir"], o["sbindir"], o["mandir"])')
for v in bindir sbindir mandir; do
    case ${!v} in /*) ;; *) printf -v "$v" '%s' "$prefix/${!v}" ;; esac
done
BIN=$DEST$bindir
SBIN=$DEST$sbindir
for f in "$BIN/locusctl" "$BIN/locus-storaged" "$SBIN/locus-cssd" "$SBIN/locusfs-mount"; do
    [ -x "$f" ] || fail "scripts/install.sh did not install $f"
done
[ -L "$SBIN/locusfs" ] && [ "$(readlink -f "$SBIN/locusfs")" = "$(readlink -f "$SBIN/locusfs-mount")" ] ||
    fail "$SBIN/locusfs is not a link to locusfs-mount (mount.fuse3 runs the helper named after the subtype)"
for f in man8/locusctl.8 man8/locusfs-mount.8 man8/locus-cssd.8 man8/locus-storaged.8 man7/locusfs.7 \
         man5/locusfs-segments.5; do
    [ -f "$DEST$mandir/$f" ] || fail "scripts/install.sh did not install the man page $DEST$mandir/$f"
done

for u in locus-storaged.service locus-cssd.service; do
    f=$DEST$prefix/lib/systemd/system/$u
    [ -f "$f" ] || fail "scripts/install.sh did not install the systemd unit $f"
    exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$f")
    [ -n "$exe" ] && [ -x "$DEST$exe" ] || fail "$f starts '$exe', which was not installed"
done

# ---- 2. the installed locusctl runs the installed programs
LOCUSCTL=$BIN/locusctl
unset LOCUS_BIN_DIR
PATH=/usr/bin:/bin cluster_up
for n in cssd storaged mount; do
    exe=$(readlink "/proc/$(pid_of "$n")/exe") || fail "no $n process"
    case $exe in "$DEST"/*) ;; *) fail "the installed locusctl started $n from $exe, not from $DEST" ;; esac
done
echo "from dev up" >"$MNT/hello"

# ---- 3. mount(8) with the installed helper, in a private mount namespace
mkdir -p "$WORK/m1" "$WORK/m2"
log "+ unshare -m: mount -t fuse.locusfs and mount -T FSTAB"
WORK=$WORK STATE=$STATE MNT=$MNT IN_SBIN=$SBIN \
    unshare -m --propagation private bash "${BASH_SOURCE[0]}" --in-namespace ||
    fail "mounting through mount(8) failed (see above)"
is_mounted "$WORK/m1" || is_mounted "$WORK/m2" && fail "a mount made in the private namespace leaked out"
[ "$(cat "$MNT/by-mount-t")" = "from mount -t" ] || fail "$MNT/by-mount-t lost after the helpers unmounted"

cluster_down
pass
