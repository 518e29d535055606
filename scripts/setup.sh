#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh [--check] [BUILDDIR]: installs what is missing (Debian packages),
# bootstraps, configures and builds libsocknet in BUILDDIR (default build/).
# --check also installs what the test suite needs. Used by demo.sh and
# check.sh; safe to run again (it only does what is not done yet).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
want_check=0
if [ "${1:-}" = "--check" ]; then want_check=1; shift; fi
build=${1:-$top/build}

# doxygen makes the manual pages from the headers (a release tarball ships them);
# hiredis the hub's Redis engine (rooms across servers)
pkgs=(build-essential autoconf automake libtool pkg-config doxygen
      libwolfssl-dev zlib1g-dev libhiredis-dev)
if [ $want_check = 1 ]; then
    # CUnit for the unit tests (make check)
    pkgs+=(libcunit1-dev)
    # clang and its sanitizer and libFuzzer runtimes (libclang-rt-dev, which
    # installing clang does not bring) for the fuzz targets, clang-format for
    # the format stage,
    # chromium for the browser tests (interop, chat),
    # openssl and gnutls-cli for the TLS interop test, curl for the chat test,
    # man-db (and groff) to render the manual pages in tests/check-man.sh,
    # redis-server for the Redis engine's tests (each starts its own)
    pkgs+=(valgrind procps iproute2 psmisc clang libclang-rt-dev clang-format chromium openssl
           gnutls-bin curl man-db redis-server)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm run the interop peers; a Node.js from elsewhere that
# brings its own npm will do.
if [ $want_check = 1 ]; then
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    echo "setup: bootstrapping (autoreconf)" >&2
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi

# An existing build is configured again (keeping its flags) when configure
# changed. One made before packages were installed here (demo.sh first, then
# check.sh) is also rebuilt from clean: configure's findings (CUnit, openssl)
# and the headers the sources saw (valgrind/valgrind.h, which makes fibers
# known to valgrind) may have changed, and make does not rebuild an object
# for a header that was absent when it was compiled.
check_missing() { sed -n 's/^S\["SN_CHECK_MISSING"\]="\(.*\)"$/\1/p' config.status; }
mkdir -p "$build"
cd "$build"
packages_changed=0
[ -f Makefile ] && { [ ${#missing[@]} -gt 0 ] ||
    { [ $want_check = 1 ] && [ -n "$(check_missing)" ]; }; } && packages_changed=1
if [ ! -f Makefile ]; then
    echo "setup: configuring in $build" >&2
    "$top/configure" -q ${SN_CONFIGURE_FLAGS:-}
elif [ $packages_changed = 1 ] || [ "$top/configure" -nt config.status ]; then
    echo "setup: configuring again in $build (with its first flags)" >&2
    ./config.status --recheck >/dev/null && ./config.status >/dev/null
fi
if [ $packages_changed = 1 ]; then
    echo "setup: packages were installed since $build was built: rebuilding from clean" >&2
    make -s clean >/dev/null
fi
echo "setup: building" >&2
make -s -j"$(nproc)" >/dev/null
