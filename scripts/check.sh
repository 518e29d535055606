#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check.sh: sets everything up, then runs the whole test suite:
#   0. bootstrap: the committed tree (git archive of SN_BOOTSTRAP_REV, HEAD
#      by default) bootstraps with aclocal unable to see autoconf-archive
#      (as on a bare machine), configures, builds, installs and refuses
#      make check without CUnit (naming the package), and make clean and
#      make distclean of that in-tree build leave every tracked file
#   format: every C file as .clang-format wants it, an SPDX line in every
#      source file
#   1. make check                      (build/)
#   2. AddressSanitizer + UBSan        (build-asan/; fibers switch with
#      swapcontext here, so the portable switch is tested too), and the
#      interop tests (below) against that build
#   3. ThreadSanitizer                 (build-tsan/), and the interop tests
#   4. valgrind memcheck on the unit tests
#   5. make install into a scratch root, and a program built against it
#      with `cc app.c $(pkg-config --cflags --libs socknet)`
#   6. make distcheck                  (the tarball builds and passes too)
#   interop: real WebSocket peers (tests/interop/run.js): the npm `ws` client
#      against examples/ws-echo, a `ws` server against the library's client,
#      headless Chromium against ws-echo; `ws` is installed into build/interop
#      at the version tests/interop/package.json pins (once; reruns are offline);
#      and real TLS peers: openssl s_client / s_server and gnutls-cli against
#      the examples (tests/interop-tls.sh)
#   fuzz: the libFuzzer targets of tests/fuzz, built with clang in
#      build-fuzz/, each run for SN_FUZZ_SECONDS (10) from its seed corpus
# Exit status is non-zero if any stage fails. SN_CHECK_STAGES="default asan"
# runs a subset.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
stages=${SN_CHECK_STAGES:-"bootstrap format default interop fuzz asan tsan valgrind install distcheck"}
passed=0
failed=0
failed_names=""

# The default build treats compiler warnings as errors (configure --enable-werror),
# and so Doxygen's warnings on the headers (the manual pages).
export SN_CONFIGURE_FLAGS="${SN_CONFIGURE_FLAGS:---enable-werror}"
export SN_DOXYGEN_STRICT=FAIL_ON_WARNINGS
"$top/scripts/setup.sh" --check "$top/build" || { echo "check: set-up failed"; exit 1; }

# Many connections in the tests: allow enough descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

show_logs() {
    local dir=$1
    for log in "$dir"/tests/*.log; do
        [ -f "$log" ] || continue
        local trs=${log%.log}.trs
        if [ -f "$trs" ] && grep -qE '^:test-result: (FAIL|ERROR)' "$trs"; then
            echo "---- $log"
            tail -n 60 "$log"
        fi
    done
}

run_stage() {
    local name=$1; shift
    local t0=$SECONDS
    echo "==== check: $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "==== check: $name passed ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failed_names="$failed_names $name"
        echo "==== check: $name FAILED ($((SECONDS - t0)) s)"
    fi
}

make_check() { # BUILDDIR [configure flags...]
    local dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" &&
        { [ -f Makefile ] || "$top/configure" -q "$@"; } &&
        make -s -j"$jobs" >/dev/null &&
        make -j"$jobs" check >"$dir/check.out" 2>&1)
    local rc=$?
    grep -E '^(# [A-Z]+:|FAIL|ERROR)' "$dir/check.out" || true
    [ $rc = 0 ] || show_logs "$dir"
    return $rc
}

stage_default() { make_check "$top/build"; }

# A directory of the system's aclocal macros without autoconf-archive's (if it is
# installed): aclocal given it sees what a bare machine has.
bare_acdir() { # DIR
    local sys f
    sys=$(aclocal --print-ac-dir)
    mkdir -p "$1"
    for f in "$sys"/*; do ln -s "$f" "$1/"; done
    for f in $(dpkg -L autoconf-archive 2>/dev/null | grep "^$sys/"); do
        rm -f "$1/$(basename "$f")"
    done
    return 0
}

# The pkg-config files of what the library links (wolfSSL, zlib), without CUnit's.
bare_pcdir() { # DIR
    local pc
    mkdir -p "$1"
    for pc in wolfssl zlib; do
        ln -s "$(pkg-config --variable=pcfiledir "$pc")/$pc.pc" "$1/" || return 1
    done
}

# In the exported tree $1 (cwd), with scratch directory $2: bootstrap as on a
# bare machine, build without CUnit, install, make check must refuse, clean.
bootstrap_in() { # TMP
    local tmp=$1 f
    echo "bootstrap: autoreconf -fi, aclocal without autoconf-archive"
    ACLOCAL="aclocal --system-acdir=$tmp/aclocal" autoreconf -fi >"$tmp/autoreconf.log" 2>&1 ||
        { tail -n 20 "$tmp/autoreconf.log"; return 1; }
    echo "bootstrap: configure, make, make install with no CUnit in sight"
    env -u PKG_CONFIG_PATH PKG_CONFIG_LIBDIR="$tmp/pkgconfig" ./configure -q >"$tmp/configure.log" 2>&1 ||
        { tail -n 20 "$tmp/configure.log"; return 1; }
    grep -q 'libcunit1-dev' "$tmp/configure.log" ||
        { echo "bootstrap: configure did not warn about CUnit"; return 1; }
    make -s -j"$jobs" >"$tmp/make.log" 2>&1 || { tail -n 30 "$tmp/make.log"; return 1; }
    make -s install DESTDIR="$tmp/root" >"$tmp/install.log" 2>&1 ||
        { tail -n 30 "$tmp/install.log"; return 1; }
    [ -n "$(find "$tmp/root" -name 'libsocknet.so*' -print -quit)" ] ||
        { echo "bootstrap: make install installed no libsocknet.so"; return 1; }
    if make check >"$tmp/check.log" 2>&1; then
        echo "bootstrap: make check without CUnit did not fail"
        return 1
    fi
    grep -q 'apt-get install libcunit1-dev' "$tmp/check.log" ||
        { echo "bootstrap: make check failed without naming CUnit's package:"; tail "$tmp/check.log"; return 1; }
    echo "bootstrap: make clean, make distclean; every tracked file must stay"
    make -s clean >/dev/null 2>&1 && make -s distclean >/dev/null 2>&1 ||
        { echo "bootstrap: make clean or distclean failed"; return 1; }
    while read -r f; do [ -e "$f" ] || [ -L "$f" ] || echo "$f"; done <"$tmp/tracked" >"$tmp/lost"
    [ ! -s "$tmp/lost" ] || { echo "bootstrap: make clean/distclean deleted:"; cat "$tmp/lost"; return 1; }
}

stage_bootstrap() {
    local tmp rev=${SN_BOOTSTRAP_REV:-HEAD} rc=1
    if ! git -C "$top" rev-parse -q --verify "$rev^{commit}" >/dev/null 2>&1; then
        echo "bootstrap: not a git checkout (a tarball needs no bootstrap): skipped"
        return 0
    fi
    tmp=$(mktemp -d)
    mkdir "$tmp/tree"
    if git -C "$top" archive "$rev" | tar -x -C "$tmp/tree" &&
        git -C "$top" ls-tree -r --name-only "$rev" >"$tmp/tracked" &&
        bare_acdir "$tmp/aclocal" && bare_pcdir "$tmp/pkgconfig"; then
        echo "bootstrap: the tree of $rev ($(git -C "$top" rev-parse --short "$rev"))"
        (cd "$tmp/tree" && bootstrap_in "$tmp") && rc=0
    fi
    rm -rf "$tmp"
    return $rc
}

# Every C file formatted as .clang-format says; every source file carries its
# SPDX-License-Identifier line.
stage_format() {
    local f rc=0
    git -C "$top" rev-parse -q --verify HEAD >/dev/null 2>&1 ||
        { echo "format: not a git checkout: skipped"; return 0; }
    command -v clang-format >/dev/null || { echo "format: clang-format not installed"; return 1; }
    while read -r f; do
        clang-format --dry-run -Werror "$top/$f" >/dev/null 2>&1 || { echo "format: $f differs"; rc=1; }
    done < <(git -C "$top" ls-files '*.c' '*.h')
    while read -r f; do
        head -n 3 "$top/$f" | grep -q 'SPDX-License-Identifier: MIT' || { echo "format: $f has no SPDX line"; rc=1; }
    done < <(git -C "$top" ls-files '*.c' '*.h' '*.S' '*.sh' '*.js' '*.mjs' '*.am' '*.ac' .ci/run)
    [ $rc = 0 ] && echo "format: every file as .clang-format says, with its SPDX line"
    return $rc
}

# The npm packages of tests/interop/package.json, in build/interop: installed
# only when a pinned version is not there yet.
npm_peers() {
    local dir=$top/build/interop want
    mkdir -p "$dir"
    cmp -s "$top/tests/interop/package.json" "$dir/package.json" ||
        cp "$top/tests/interop/package.json" "$dir/package.json"
    want=$(node -e 'const d = require(process.argv[1]).dependencies;
        for (const [n, v] of Object.entries(d)) {
            let have = "";
            try { have = require(`${process.argv[2]}/node_modules/${n}/package.json`).version; } catch (e) {}
            if (have !== v) console.log(n + "@" + v);
        }' "$dir/package.json" "$dir") || return 1
    [ -z "$want" ] && return 0
    echo "interop: npm install $want"
    (cd "$dir" && npm install --no-package-lock --prefer-offline --no-audit --no-fund \
        --loglevel=error >"$dir/npm.log" 2>&1) || { tail -n 30 "$dir/npm.log"; return 1; }
}

# The interop tests against the programs of build directory $1 (built here).
interop_in() {
    (cd "$1" && make -s -j"$jobs" examples/ws-echo tests/interop/ws-interop-client \
        >/dev/null) || return 1
    npm_peers || return 1
    NODE_PATH=$top/build/interop/node_modules timeout 900 node "$top/tests/interop/run.js" "$1"
}

stage_interop() { interop_in "$top/build" && "$top/tests/interop-tls.sh" "$top/build"; }

# Each libFuzzer target for SN_FUZZ_SECONDS, from its seeds (tests/fuzz/corpus/NAME) and
# what earlier runs found (build-fuzz/corpus/NAME). A crash is kept in build-fuzz/artifacts.
stage_fuzz() {
    local dir=$top/build-fuzz rc=0 t max secs=${SN_FUZZ_SECONDS:-10}
    local f="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"
    mkdir -p "$dir/artifacts"
    (cd "$dir" &&
        { [ -f Makefile ] || "$top/configure" -q CC=clang CFLAGS="$f -fno-sanitize-recover=all" \
            LDFLAGS="-fsanitize=address,undefined"; } &&
        make -s -j"$jobs" fuzz >/dev/null) || return 1
    for t in http ws-frame ws-recv ws-handshake inflate; do
        case $t in http | ws-frame) max=4096 ;; *) max=16384 ;; esac
        mkdir -p "$dir/corpus/$t"
        if "$dir/tests/fuzz/fuzz-$t" -max_total_time="$secs" -max_len=$max -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
            "$dir/corpus/$t" "$top/tests/fuzz/corpus/$t" >"$dir/$t.log" 2>&1; then
            echo "fuzz-$t: $(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$dir/$t.log" |
                grep -oE '[0-9]+$') runs in $secs s, no failure"
        else
            echo "---- fuzz-$t failed (input kept in $dir/artifacts):"
            grep -vE '^#[0-9]+ ' "$dir/$t.log" | tail -n 40
            rc=1
        fi
    done
    return $rc
}

# The sanitizer stages run the interop tests too, against their own build of ws-echo and
# of the library's client (a sanitizer's report makes the program fail).
stage_asan() {
    local f="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
    make_check "$top/build-asan" --with-context=ucontext CFLAGS="$f" \
        LDFLAGS="-fsanitize=address,undefined" && interop_in "$top/build-asan"
    local rc=$?
    unset ASAN_OPTIONS UBSAN_OPTIONS
    return $rc
}

stage_tsan() {
    export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
    make_check "$top/build-tsan" CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" &&
        interop_in "$top/build-tsan"
    local rc=$?
    unset TSAN_OPTIONS
    return $rc
}

# One test program under valgrind (memcheck), its log beside it.
valgrind_one() { # PROGRAM
    local t=$1 dir=$top/build
    if SN_TEST_QUICK=1 SN_TEST_LIMIT=900 sh "$top/tests/watch.sh" \
        "$dir/libtool" --mode=execute valgrind -q --leak-check=full \
        --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 "$t" >"$t.valgrind.log" 2>&1; then
        echo "valgrind: $(basename "$t")"
    else
        echo "---- $t under valgrind"; tail -n 60 "$t.valgrind.log"; return 1
    fi
}

# Every test program under valgrind, $jobs at a time (valgrind runs a
# program's threads one at a time, so one program keeps one core busy).
stage_valgrind() {
    local dir=$top/build rc=0 running=0 t
    (cd "$dir" && make -s -j"$jobs" check TESTS= >/dev/null) || return 1
    for t in "$dir"/tests/test-*; do
        [ -x "$t" ] && [ "${t%.*}" = "$t" ] || continue
        if [ $running -ge "$jobs" ]; then
            wait -n || rc=1
            running=$((running - 1))
        fi
        valgrind_one "$t" &
        running=$((running + 1))
    done
    while [ $running -gt 0 ]; do
        wait -n || rc=1
        running=$((running - 1))
    done
    return $rc
}

stage_install() {
    local root rc=0 out
    root=$(mktemp -d)
    (cd "$top/build" && make -s install DESTDIR="$root" >/dev/null) || { rm -rf "$root"; return 1; }
    local pc
    pc=$(dirname "$(find "$root" -name socknet.pc | head -n 1)")
    local flags
    flags=$(PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$root pkg-config --cflags --libs socknet) || rc=1
    echo "pkg-config socknet: $flags"
    if [ $rc = 0 ] && cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
        "$top/examples/echo-server.c" $flags -o "$root/echo"; then
        out=$(LD_LIBRARY_PATH=$(dirname "$(find "$root" -name 'libsocknet.so' | head -n 1)") \
            timeout 5 "$root/echo" --port 0 | head -n 1)
        case "$out" in "listening on 127.0.0.1:"*) echo "installed build runs: $out" ;; *) rc=1 ;; esac
    else
        rc=1
    fi
    rm -rf "$root"
    return $rc
}

stage_distcheck() {
    (cd "$top/build" && make -s -j"$jobs" distcheck >"$top/build/distcheck.out" 2>&1)
    local rc=$?
    [ $rc = 0 ] || tail -n 80 "$top/build/distcheck.out"
    return $rc
}

for s in $stages; do
    run_stage "$s" "stage_$s"
done

echo "check:$failed_names" | sed 's/^check:$/check: all stages passed/'
echo "$passed passed, $failed failed"
[ $failed = 0 ]
