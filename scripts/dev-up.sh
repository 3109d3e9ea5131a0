#!/usr/bin/env bash
# Install what is missing, build, and start a one-node LocusFS dev cluster
# mounted at DIR (default /mnt/locus).  Stop it with
#   build/ctl/locusctl dev down DIR [--state PATH]
# (the same --state as here, if one was given; dev down refuses a DIR that
# is not this cluster's mount).  Extra arguments go to `locusctl dev up`
# (e.g. --state PATH, or --force to mount over a non-empty DIR).
# To install the programs instead: scripts/install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/mnt/locus}
[ $# -gt 0 ] && shift
./scripts/deps.sh
if [ -f build/build.ninja ]; then :; else meson setup build >/dev/null; fi
ninja -C build >/dev/null
mkdir -p "$dir"
exec build/ctl/locusctl dev up "$dir" "$@"
