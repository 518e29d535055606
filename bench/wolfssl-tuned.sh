#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/wolfssl-tuned.sh — Debian's wolfSSL, built again with its assembly paths (AES-NI,
# AVX2, the SP big-number code), for ./configure --with-wolfssl=DIR (issue 21).
#
#   bench/wolfssl-tuned.sh [--prefix DIR]
#
#   --prefix DIR  where it is installed (default bench/wolfssl-tuned, which git ignores);
#                 the source and the build are kept in DIR/src
#
# Debian 12 builds wolfSSL without AES-NI and without its x86-64 assembly, so TLS bulk
# data through it runs at a tenth of OpenSSL's speed on a CPU that has AES-NI. This script
# fetches the source package of the wolfSSL that is installed (apt-get source; it needs
# dpkg-dev, and installs it if missing), with Debian's patches, and builds it with
# Debian's own options and compiler flags (debian/rules: --enable-distro --enable-pkcs11
# --disable-examples, dpkg-buildflags with hardening=+all) plus
#
#   --enable-aesni --enable-intelasm --enable-sp=2048,3072,4096,256 --enable-sp-asm
#   --disable-sakke
#
# (why a list for --enable-sp, and why no SAKKE: see "tuning" below). So the two builds
# have the same TLS 1.3, ALPN, SNI, session tickets, OpenSSL compatibility layer
# (--enable-distro is --enable-all, which turns on --enable-opensslextra and
# --enable-opensslall), FP_ECC and everything else libsocknet and its tests use. The
# instruction sets are chosen at run time (cpuid), so the library also runs on a CPU
# without AVX2. The script compares the options.h it made with Debian's
# (/usr/include/wolfssl/options.h) and prints the differences. With 5.5.4-2+deb12u3:
#
#   added    WOLFSSL_AESNI, USE_INTEL_SPEEDUP: AES-NI and PCLMULQDQ for AES-GCM, the
#            AVX1/AVX2 code for SHA-2, ChaCha20 and Poly1305
#            WOLFSSL_SP_ASM, WOLFSSL_SP_X86_64_ASM, WOLFSSL_SP_LARGE_CODE,
#            WOLFSSL_HAVE_SP_RSA, WOLFSSL_HAVE_SP_DH, WOLFSSL_HAVE_SP_ECC, WOLFSSL_SP_4096:
#            RSA and DH (2048 to 4096 bits) and P-256 on the assembly single-precision
#            code (Debian's: the generic sp_int code, WOLFSSL_SP_MATH_ALL, in both)
#   removed  WOLFCRYPT_HAVE_SAKKE
#
# options.h differs (Aes, for one, is another struct), so a program must be compiled
# against these headers, not only linked with this library: --with-wolfssl does both.
#
# If no deb-src entry is configured, one is added for Debian's own archive: "deb-src" is
# added to the Types of the deb822 stanzas (/etc/apt/sources.list.d/*.sources) whose URIs
# are on debian.org, or a deb-src line is added after each such deb line of
# /etc/apt/sources.list; the file is first copied to /var/backups, the change is printed,
# and apt-get update runs. Nothing else on the system changes (dpkg-dev aside).
#
# Idempotent: a second run with the same wolfSSL version and options only prints the
# configure line. Needs root for apt-get (only when something is missing), autoconf,
# automake, libtool and a compiler (build-essential) for the build. About 4 minutes on 2
# CPUs.
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=$here/wolfssl-tuned
usage() { sed -n '2,9p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    *) usage ;;
    esac
done
say() { echo "wolfssl-tuned: $*" >&2; }
# The prefix is this script's alone: it deletes and rebuilds its src/ there, and headers
# installed where the compiler looks by default (/usr/local/include) would shadow
# Debian's for every other build. So it must be new, empty, or made by this script.
if [ -d "$prefix" ] && [ -n "$(ls -A "$prefix")" ] && [ ! -f "$prefix/.wolfssl-tuned" ] &&
    [ ! -f "$prefix/.built" ]; then
    echo "wolfssl-tuned: --prefix $prefix is not empty and was not made by this script: give a new directory" >&2
    exit 1
fi
case $(cd "$(dirname "$prefix")" 2>/dev/null && pwd)/$(basename "$prefix") in
/usr | /usr/local | /usr/local/* | /opt | /)
    echo "wolfssl-tuned: --prefix $prefix: not a system directory (its headers would shadow Debian's)" >&2
    exit 1 ;;
esac
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
touch "$prefix/.wolfssl-tuned"
die() { say "$*"; exit 1; }

# --enable-sp with a list: RSA and DH at 2048, 3072 and 4096 bits and ECC on P-256 (the
# curve of most certificates and the group after X25519), not P-384 and P-521, and
# without SAKKE (--disable-sakke, a pairing-based scheme no TLS suite uses). The reason
# is FP_ECC, the per-thread cache of fixed-point ECC that Debian enables (sn_tls.c frees
# it, wc_ecc_fp_free): with the SP code each curve gets a cache of its own in
# thread-local storage, P-256 65 KiB, P-384 98 KiB, P-521 147 KiB, SAKKE's 1024-bit curve
# 1 MiB. glibc carves thread-local storage out of every thread's stack and zeroes it when
# the thread starts, so with all of them (1.4 MiB) every thread costs that much more to
# start and to keep (libsocknet's pools add it to their stacks, sn__thread_overhead; before
# that its 256 KiB threads could not start at all). With P-256 alone it is 114 KiB
# against Debian's 49. P-384 and P-521 stay on the generic code, as in Debian's build.
tuning="--enable-aesni --enable-intelasm --enable-sp=2048,3072,4096,256 --enable-sp-asm"
tuning="$tuning --disable-sakke"
# What debian/rules passes (checked against the fetched source below).
debian_opts="--enable-distro --enable-pkcs11 --disable-examples"

# The Debian version to rebuild: the installed one, so that the two builds differ only in
# the options; else the newest the archive has.
version=$(dpkg-query -W -f '${Version}' libwolfssl-dev 2>/dev/null || true)
[ -n "$version" ] || version=$(apt-cache policy libwolfssl-dev | sed -n 's/^ *Candidate: //p')
[ -n "$version" ] && [ "$version" != "(none)" ] ||
    die "no libwolfssl-dev known to apt (Debian: apt-get install libwolfssl-dev)"
stamp="version=$version options=$debian_opts $tuning"
if [ -f "$prefix/lib/pkgconfig/wolfssl.pc" ] && [ "$(cat "$prefix/.built" 2>/dev/null)" = "$stamp" ]; then
    say "already built: wolfSSL $version in $prefix"
    echo "./configure --with-wolfssl=$prefix"
    exit 0
fi

# ---- the source package ------------------------------------------------------------------
apt_install() {
    [ "$(id -u)" = 0 ] || die "$1 is missing and this is not root: apt-get install $1"
    say "installing $1 (apt-get install -y $1)"
    apt-get install -y -q "$1" >&2
}
command -v dpkg-source >/dev/null || apt_install dpkg-dev
command -v autoreconf >/dev/null || apt_install autoconf
command -v libtoolize >/dev/null || apt_install libtool
command -v automake >/dev/null || apt_install automake

# Adds deb-src to the deb822 stanzas of FILE whose URIs are on debian.org.
add_src_deb822() {
    awk '
    function flush(i, l) {
        for (i = 1; i <= n; i++) {
            l = buf[i]
            if (debian && !src && l ~ /^Types:/) l = l " deb-src"
            print l
        }
        n = debian = src = 0
    }
    /^[ \t]*$/ { flush(); print; next }
    { buf[++n] = $0 }
    /^URIs:/ && /debian\.org/ { debian = 1 }
    /^Types:/ && /(^|[ \t])deb-src([ \t]|$)/ { src = 1 }
    END { flush() }' "$1"
}

# Adds a deb-src line after each deb line of FILE (one-line format) on debian.org.
add_src_oneline() {
    awk '{ print }
    /^[ \t]*deb[ \t]/ && /debian\.org/ { l = $0; sub(/deb/, "deb-src", l); print l }' "$1"
}

# Whether apt knows wolfSSL's source package (grep reads it all: with -q it could
# stop early, and pipefail would count apt-cache's SIGPIPE as a failure).
have_src() { apt-cache showsrc wolfssl 2>/dev/null | grep -c '^Package: wolfssl' >/dev/null; }

ensure_deb_src() {
    have_src && return 0
    # deb-src entries may be there with their lists not yet fetched
    if grep -qs '^[[:space:]]*\(deb-src\|Types:.*deb-src\)' /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
        say "apt-get update (a deb-src entry is there, its lists are not)"
        apt-get update -q >&2 || die "apt-get update failed: is Debian's archive reachable?"
        have_src && return 0
    fi
    [ "$(id -u)" = 0 ] || die "apt has no deb-src entry: add one for Debian's archive (as root)"
    local f changed=0
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
        [ -f "$f" ] && grep -q 'debian\.org' "$f" || continue
        local new
        new=$(mktemp) || die "mktemp failed"
        case $f in
        *.sources) add_src_deb822 "$f" > "$new" ;;
        *) add_src_oneline "$f" > "$new" ;;
        esac
        if ! cmp -s "$f" "$new"; then
            local backup
            backup=/var/backups/$(basename "$f").before-wolfssl-tuned
            cp -p "$f" "$backup"
            say "apt has no deb-src entry: adding one for Debian's archive to $f" \
                "(the old file is $backup):"
            diff -u "$backup" "$new" | sed 's/^/    /' >&2 || true
            cat "$new" > "$f"
            changed=1
        fi
        rm -f "$new"
    done
    [ $changed = 1 ] || die "apt has no deb-src entry and no deb entry on debian.org to derive one from"
    say "apt-get update"
    apt-get update -q >&2 || die "apt-get update failed: is Debian's archive reachable?"
}

src=$prefix/src
upstream=${version%%-*}
upstream=${upstream#*:}
tree=$src/wolfssl-$upstream
if [ ! -f "$src/.fetched" ] || [ "$(cat "$src/.fetched")" != "$version" ]; then
    ensure_deb_src
    rm -rf "$src"
    mkdir -p "$src"
    say "apt-get source wolfssl=$version (into $src)"
    (cd "$src" && apt-get source -q "wolfssl=$version" >&2) ||
        die "apt-get source wolfssl=$version failed: is Debian's archive reachable, and does it
    still have this version (apt-cache policy libwolfssl35; apt-get install --only-upgrade
    libwolfssl-dev brings the installed one to the archive's)?"
    echo "$version" > "$src/.fetched"
fi
[ -f "$tree/debian/rules" ] || die "no $tree/debian/rules after apt-get source"
for o in $debian_opts; do
    grep -q -- "$o" "$tree/debian/rules" ||
        die "debian/rules no longer passes $o: read it and update this script's debian_opts"
done

# ---- the build ---------------------------------------------------------------------------
# Debian's compiler flags (debian/rules: hardening=+all), so the only difference is the
# options above.
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS=$(dpkg-buildflags --get CFLAGS)
CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS)
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS CPPFLAGS LDFLAGS
cd "$tree"
[ -x configure ] || { say "autoreconf"; autoreconf -fi >/dev/null 2>&1 || autoreconf -fi >&2; }
say "configure $debian_opts $tuning --prefix=$prefix"
# shellcheck disable=SC2086
./configure -q --prefix="$prefix" --libdir="$prefix/lib" $debian_opts $tuning >&2
say "make (about 4 minutes on 2 CPUs)"
make -s -j"$(nproc)" >/dev/null 2>"$src/make.log" || { tail -30 "$src/make.log" >&2; die "make failed (log: $src/make.log)"; }
make -s install >/dev/null 2>>"$src/make.log" || die "make install failed (log: $src/make.log)"
# A distro build leaves options.h out of make install (it differs between architectures);
# Debian's libwolfssl-dev.install copies it, so do the same.
install -m 644 wolfssl/options.h "$prefix/include/wolfssl/options.h"
install -m 644 cyassl/options.h "$prefix/include/cyassl/options.h"

# ---- what differs from Debian's build -------------------------------------------------------
defines() { sed -n 's/^#define \([A-Za-z0-9_]*\).*/\1/p' "$1" | sort -u; }
debian_h=/usr/include/wolfssl/options.h
if [ -f "$debian_h" ]; then
    added=$(comm -13 <(defines "$debian_h") <(defines "$prefix/include/wolfssl/options.h") | tr '\n' ' ')
    removed=$(comm -23 <(defines "$debian_h") <(defines "$prefix/include/wolfssl/options.h") | tr '\n' ' ')
    say "options.h against Debian's: added: ${added:-none}"
    say "options.h against Debian's: removed: ${removed:-none}"
fi
echo "$stamp" > "$prefix/.built"
say "wolfSSL $version with $tuning is in $prefix; build libsocknet against it with"
echo "./configure --with-wolfssl=$prefix"
