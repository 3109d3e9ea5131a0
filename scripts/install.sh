#!/usr/bin/env bash
# Install LocusFS: what is missing from Debian, a build, then `meson install`.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--builddir DIR]
#
#   --prefix DIR    where to install (default: the build's prefix, which is
#                   /usr/local unless you chose another): DIR/bin/locusctl,
#                   DIR/bin/locus-storaged, DIR/sbin/locus-cssd,
#                   DIR/sbin/locusfs-mount and its mount helper link
#                   DIR/sbin/locusfs, DIR/share/man/man{5,7,8}/...
#   --destdir DIR   stage the files under DIR (DESTDIR, for packaging and
#                   tests) instead of the live system
#   --builddir DIR  the meson build directory (default: build)
#
# `mount -t fuse.locusfs` and /etc/fstab lines run /sbin/mount.fuse3,
# which runs the helper `locusfs` by name.  mount(8) clears PATH before it
# runs mount.fuse3, so the helper is found only in the shell's default
# path: /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin.
# The default prefix (/usr/local) puts it there; with another prefix this
# script says which link to make.  See locusfs-mount(8).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=
destdir=
builddir=build
usage() { sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --destdir) [ $# -ge 2 ] || usage; destdir=$2; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --builddir) [ $# -ge 2 ] || usage; builddir=$2; shift 2 ;;
        --builddir=*) builddir=${1#*=}; shift ;;
        -h|--help) usage ;;
        *) echo "install: unknown argument '$1'" >&2; usage ;;
    esac
done
case $prefix in ''|/*) ;; *) echo "install: --prefix must be an absolute path" >&2; exit 2 ;; esac
if [ -n "$destdir" ]; then
    mkdir -p "$destdir"
    destdir=$(cd "$destdir" && pwd)
fi

./scripts/deps.sh
if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" ${prefix:+--prefix "$prefix"} >/dev/null
elif [ -n "$prefix" ]; then
    meson configure "$builddir" --prefix "$prefix" >/dev/null
fi
ninja -C "$builddir" >/dev/null

# The directories meson will use, as it resolved them.
read -r prefix bindir sbindir < <(meson introspect "$builddir" --buildoptions |
    python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["bindir"], o["sbindir"])')
case $sbindir in /*) ;; *) sbindir=$prefix/$sbindir ;; esac
case $bindir in /*) ;; *) bindir=$prefix/$bindir ;; esac

DESTDIR=$destdir meson install -C "$builddir" --no-rebuild --quiet
echo "installed LocusFS into ${destdir}${prefix}: ${destdir}${bindir}/locusctl," \
     "${destdir}${sbindir}/locusfs-mount (mount helper ${destdir}${sbindir}/locusfs)"

case ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" in
    *":$sbindir:"*) ;;
    *)
        echo "note: mount(8) runs mount helpers with a fixed PATH that does not hold $sbindir;" \
             "for 'mount -t fuse.locusfs' and fstab, link the helper into it:" >&2
        echo "    ln -s $sbindir/locusfs-mount /usr/local/sbin/locusfs" >&2
        ;;
esac
