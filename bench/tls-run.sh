#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/tls-run.sh — the TLS figures with Debian's wolfSSL and with a tuned one, in the same
# run: bench/tls-bench of a build on Debian's libwolfssl and of a build configured
# --with-wolfssl=DIR (bench/wolfssl-tuned.sh), alternating round after round, and the bulk
# stream on OpenSSL at both ends (bench/openssl-bulk) after each pair (issue 21).
#
#   bench/tls-run.sh --debian BUILDDIR --tuned BUILDDIR [--rounds N] [--seconds S]
#                    [--quick] [--out FILE] [--note TEXT]
#
#   --debian DIR  a build of libsocknet on Debian's wolfSSL (bench/tls-bench made in it;
#                 bench/openssl-bulk too, when configure found libssl-dev)
#   --tuned DIR   a build configured --with-wolfssl=DIR (bench/tls-bench made in it)
#   --rounds N    rounds (1-9, default 3); each has tls-bench of the Debian build, then of
#                 the tuned one, then openssl-bulk; the table has the medians, each ratio
#                 is that of the medians, with the lowest and highest ratio of one round
#   --seconds S   each measurement's length (default 2; tls-bench --seconds); ping-pong
#                 runs one TLS and one plain round per tls-bench (--rounds 1)
#   --quick       one round of 1 s measurements (about a minute), noisier
#   --out FILE    Markdown file the section is appended to (default bench/RESULTS.md)
#   --note TEXT   a line under the section's heading
#
# The default run takes about 3.5 minutes. Runs under flock /tmp/bench.lock. Progress and
# tls-bench's own lines go to stderr, the section to stdout and FILE. Exit 1 if a
# measurement failed (its cells say FAIL).
set -u -o pipefail
export LC_ALL=C # printf %.1f and sort -g read and write decimal points
case " $* " in *" --help "* | *" -h "*) sed -n '2,25p' "$0" >&2; exit 2 ;; esac # before the lock
if [ -z "${SN_BENCH_LOCKED:-}" ]; then # one benchmark at a time on this machine
    SN_BENCH_LOCKED=1 exec flock /tmp/bench.lock "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
debian=
tuned=
rounds=3
seconds=2
out=$top/bench/RESULTS.md
note=
cmdline=$0
for arg in "$@"; do
    if [[ $arg =~ ^[-A-Za-z0-9_./=:,+]+$ ]]; then cmdline+=" $arg"; else cmdline+=" ${arg@Q}"; fi
done
usage() { sed -n '2,25p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --debian) [ $# -ge 2 ] || usage; debian=$2; shift 2 ;;
    --tuned) [ $# -ge 2 ] || usage; tuned=$2; shift 2 ;;
    --rounds) [[ ${2:-} =~ ^[1-9]$ ]] || usage; rounds=$2; shift 2 ;;
    --seconds) [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || usage; seconds=$2; shift 2 ;;
    --quick) rounds=1; seconds=1; shift ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --note) [ $# -ge 2 ] || usage; note=$2; shift 2 ;;
    *) usage ;;
    esac
done
[ -n "$debian" ] && [ -n "$tuned" ] || usage
say() { echo "tls-run: $*" >&2; }
for b in "$debian" "$tuned"; do
    [ -x "$b/bench/tls-bench" ] && [ -x "$b/libtool" ] ||
        { say "no $b/bench/tls-bench: make bench/tls-bench in $b"; exit 2; }
done
debian=$(cd "$debian" && pwd)
tuned=$(cd "$tuned" && pwd)
osl=$debian/bench/openssl-bulk
[ -x "$osl" ] || { say "no $osl (configure found no libssl-dev): the OpenSSL column is left out"; osl=; }

tmp=$(mktemp -d /tmp/tls-run.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
sh "$top/tests/gen-pki.sh" "$tmp/pki" >/dev/null 2>&1 || { say "tests/gen-pki.sh failed"; exit 1; }

# The wolfSSL each build's tls-bench loads (through libsocknet's rpath for the tuned one).
wolfssl_of() {
    "$1/libtool" --mode=execute ldd "$1/bench/tls-bench" 2>/dev/null |
        awk '/libwolfssl/ { print $3; exit }'
}
wd=$(wolfssl_of "$debian")
wt=$(wolfssl_of "$tuned")
say "Debian build $debian: $wd"
say "tuned build  $tuned: $wt"
[ -n "$wt" ] && [ "$wd" != "$wt" ] ||
    { say "both builds load the same wolfSSL ($wd): is $tuned configured --with-wolfssl?"; exit 2; }

# results: lines "BUILD ROUND KEY VALUE", KEY = row:ours or row:ref
res=$tmp/results
: > "$res"
failed=0
bench_one() { # BUILD-NAME BUILDDIR ROUND
    local log=$tmp/$1.$3.log
    say "round $3: tls-bench, $1 build"
    if "$2/libtool" --mode=execute "$2/bench/tls-bench" "$tmp/pki" --seconds "$seconds" \
        --rounds 1 > "$log" 2> "$log.err"; then
        awk -v b="$1" -v r="$3" '$1 == "row" { print b, r, $2 ":ours", $3; print b, r, $2 ":ref", $4 }' \
            "$log" >> "$res"
        grep '^row' "$log" | sed "s/^/tls-run: $1: /" >&2
    else
        say "tls-bench of the $1 build failed:"; tail -n 5 "$log.err" >&2; failed=1
    fi
}
for r in $(seq 1 "$rounds"); do
    bench_one debian "$debian" "$r"
    bench_one tuned "$tuned" "$r"
    if [ -n "$osl" ]; then
        say "round $r: openssl-bulk"
        if line=$("$osl" "$tmp/pki" --seconds "$seconds" 2> "$tmp/osl.err"); then
            echo "openssl $r bulk $(sed -n 's/.*mib_per_s=\([0-9.]*\).*/\1/p' <<< "$line")" >> "$res"
            say "$line"
        else
            say "openssl-bulk failed:"; tail -n 5 "$tmp/osl.err" >&2; failed=1
        fi
    fi
done

# ---- the table ----------------------------------------------------------------------------
# median of the values of BUILD KEY over the rounds ("" if none)
median() {
    awk -v b="$1" -v k="$2" '$1 == b && $3 == k { print $4 }' "$res" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%s", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# the lowest and highest ratio BUILD1 KEY1 / BUILD2 KEY2 of one round ("" if one value)
range() {
    awk -v b1="$1" -v k1="$2" -v b2="$3" -v k2="$4" '
        $1 == b1 && $3 == k1 { x[$2] = $4 } $1 == b2 && $3 == k2 { y[$2] = $4 }
        END { for (r in x) if ((r in y) && y[r] > 0) { q = x[r] / y[r]; if (lo == "" || q < lo) lo = q; if (hi == "" || q > hi) hi = q }
              lo = sprintf("%.2f", lo); hi = sprintf("%.2f", hi); if (lo != hi) printf "%s–%s", lo, hi }' "$res"
}
cell() { [ -n "$1" ] && printf '%.1f' "$1" || printf 'FAIL'; }
ratio() { # A B RANGE
    [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" -v r="$3" \
        'BEGIN { if (b > 0) printf "%.2f%s", a / b, (r != "" ? " (" r ")" : "") }'
}
row() { # LABEL KEY [openssl]
    local d t o="" q=""
    d=$(median debian "$2")
    t=$(median tuned "$2")
    if [ "${3:-}" = openssl ] && [ -n "$osl" ]; then
        local m
        m=$(median openssl bulk)
        o=$(cell "$m")
        q=$(ratio "$t" "$m" "$(range tuned "$2" openssl bulk)")
    fi
    echo "| $1 | $(cell "$d") | $(cell "$t") | $(ratio "$t" "$d" "$(range tuned "$2" debian "$2")") | $o | $q |"
}
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M') UTC — TLS: wolfSSL tuned against Debian's, $(nproc) CPUs, ${cpu:-unknown CPU}"
    echo
    [ -n "$note" ] && echo "$note" && echo
    echo "\`$cmdline\` (commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown));"
    echo "$rounds round(s) of tls-bench --seconds $seconds --rounds 1, Debian's build then the tuned one,"
    echo "then openssl-bulk; medians, the ratios of the medians (lowest–highest of one round)."
    echo "Debian's: $wd. Tuned: $wt."
    echo
    echo "| Figure | Debian's wolfSSL | tuned | tuned / Debian's | OpenSSL | tuned / OpenSSL |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "TLS ping-pong 64 B, 16 conns, socknet server (fibers): round trips/s" pingpong-16:ours
    row "↳ plain TCP, same server: round trips/s" pingpong-16:ref
    row "TLS ping-pong 64 B, 64 conns: round trips/s" pingpong-64:ours
    row "↳ plain TCP: round trips/s" pingpong-64:ref
    row "full handshakes, socknet server (threads): /s" handshakes-full:ours
    row "↳ bare wolfSSL server, a thread per connection: /s" handshakes-full:ref
    row "↳ bare wolfSSL server, one thread: /s" handshakes-full-iter:ref
    row "resumed handshakes, socknet server: /s" handshakes-resumed:ours
    row "↳ bare wolfSSL server, a thread per connection: /s" handshakes-resumed:ref
    row "bulk, socknet client and server (OpenSSL: both ends OpenSSL): MiB/s" bulk:ours openssl
    row "↳ bare wolfSSL client and sink: MiB/s" bulk-vs-bare:ref openssl
    row "wolfCrypt AES-128-GCM, 16 KiB, one thread: MiB/s" bulk:ref
    row "↳ encrypting and decrypting at once, the slower: MiB/s" bulk-vs-gcm-pair:ref
    row "bulk plain TCP, for scale: MiB/s" bulk-plain-tcp:ours
} > "$tmp/section"
[ -f "$out" ] || printf '# libsocknet benchmark results\n' > "$out"
cat "$tmp/section" >> "$out"
cat "$tmp/section"
exit $failed
