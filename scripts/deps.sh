#!/usr/bin/env bash
# Install the Debian packages LocusFS needs to build, test and benchmark, if any
# are missing. Safe to run again; does nothing when everything is present.
# Runs as root (CI) or through sudo; never asks a question.
set -eu
pkgs=(meson ninja-build pkg-config gcc libc6-dev
      libfuse3-dev fuse3 protobuf-c-compiler libprotobuf-c-dev
      libsqlite3-dev check libuv1-dev libsodium-dev libxxhash-dev libinih-dev nftables iproute2
      kmod procps psmisc rsync git
      clang libclang-rt-14-dev)   # scripts/fuzz.sh: clang, libFuzzer, ASan/UBSan runtimes
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq </dev/null
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
# FUSE needs its device node; containers sometimes lack it.
if [ ! -e /dev/fuse ] && [ "$(id -u)" -eq 0 ]; then
    modprobe fuse 2>/dev/null || true
    [ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229 || true
fi
