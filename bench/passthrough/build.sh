#!/usr/bin/env bash
# build.sh -- build the reference filesystem for benchmarks and test
# validation: libfuse's passthrough_ll example, compiled from the copy Debian
# ships with libfuse3-dev (never copied into this repository).
#
# usage: bench/passthrough/build.sh [OUT]
#   OUT  the executable to write (default: <repo>/build/bench/passthrough_ll)
#
# Prints the path of the executable on stdout (nothing else); compiler output
# goes to stderr.  Rebuilds only when the source is newer than OUT.
#
# How to mount it (as root, foreground, the way bench/fsbench.sh does):
#   passthrough_ll -f -o source=SRC,default_permissions,allow_other MNT &
#   (add -o cache=never for no kernel caching, -o writeback for writeback)
# Unmount with `fusermount3 -u MNT`.
set -euo pipefail

src_dir=${PASSTHROUGH_SRC_DIR:-/usr/share/doc/libfuse3-dev/examples}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-$repo/build/bench/passthrough_ll}

src=$src_dir/passthrough_ll.c
if [ ! -f "$src" ] || [ ! -f "$src_dir/passthrough_helpers.h" ]; then
    # Debian compresses large example files; accept a .gz copy too.
    if [ -f "$src.gz" ]; then
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        gzip -dc "$src.gz" >"$tmp/passthrough_ll.c"
        cp "$src_dir/passthrough_helpers.h" "$tmp/" 2>/dev/null ||
            gzip -dc "$src_dir/passthrough_helpers.h.gz" >"$tmp/passthrough_helpers.h"
        src_dir=$tmp
        src=$tmp/passthrough_ll.c
    else
        echo "passthrough/build.sh: $src not found (install libfuse3-dev)" >&2
        exit 1
    fi
fi
if ! pkg-config --exists fuse3; then
    echo "passthrough/build.sh: pkg-config does not know fuse3 (install libfuse3-dev)" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "${BASH_SOURCE[0]}" -nt "$out" ]; then
    # HAVE_*: the example's build normally gets these from libfuse's
    # config.h; without them fallocate answers EOPNOTSUPP and
    # copy_file_range falls back to the kernel's splice copy.
    # shellcheck disable=SC2046
    ${CC:-cc} -O2 -g -Wall \
        -DHAVE_FALLOCATE -DHAVE_POSIX_FALLOCATE -DHAVE_COPY_FILE_RANGE \
        -I"$src_dir" "$src" -o "$out.tmp.$$" \
        $(pkg-config --cflags --libs fuse3) -lpthread >&2
    mv -f "$out.tmp.$$" "$out"
fi
echo "$out"
