#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/hub-run.sh — the broadcast hub (examples/chat) against a chat server on the npm `ws`
# package (bench/ws-chat-ref.mjs), same protocol, same load, in the same run.
#
#   bench/hub-run.sh [--builddir DIR] [--rounds N] [--out FILE] [--note TEXT]
#
#   --builddir DIR  where examples/chat and bench/hub-load were built (default ./build)
#   --rounds N      rounds per figure, ref and ours alternating; medians (default 1)
#   --out FILE      Markdown file the results section is appended to (default bench/RESULTS.md)
#   --note TEXT     a line under the section's heading
#   --ours CMD      the server under test (default DIR/examples/chat --presence off)
#   --ref CMD       the reference (default: node bench/ws-chat-ref.mjs on the npm ws package);
#                   another build's chat makes an A/B run of two versions (bench/ab-run.sh)
#   --ref-name TEXT, --ours-name TEXT  the columns' names (default "ref (npm ws)", "ours (hub)")
#
# Figures (bench/hub-load drives both servers; every run on a freshly started server):
#   fan-out of 64 B messages from 1 publisher to 100 and to 1000 subscribers: deliveries/s,
#   publish-to-arrival p50/p99 (with 32 messages in flight), server CPU per delivery;
#   the same at 100 with one more subscriber that never reads: the healthy ones' rate and
#   the server's VmRSS; 5000 idle members: server VmRSS per member, threads.
# The npm packages (pinned in tests/npm) are installed into DIR/bench/npm. Runs under
# flock /tmp/bench.lock. Progress goes to stderr, the section to stdout and FILE.
set -u -o pipefail
if [ -z "${SN_BENCH_LOCKED:-}" ]; then # one benchmark at a time on this machine
    SN_BENCH_LOCKED=1 exec flock /tmp/bench.lock "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
builddir=$top/build
rounds=1
out=$top/bench/RESULTS.md
note=
ours_cmd= ref_cmd= ours_name="ours (hub)" ref_name="ref (npm ws)"
cmdline=$0
for arg in "$@"; do
    if [[ $arg =~ ^[-A-Za-z0-9_./=:,+]+$ ]]; then cmdline+=" $arg"; else cmdline+=" ${arg@Q}"; fi
done
while [ $# -gt 0 ]; do
    case $1 in
    --builddir) builddir=$2; shift 2 ;;
    --rounds) [[ ${2:-} =~ ^[1-9]$ ]] || { sed -n '2,20p' "$0" >&2; exit 2; }; rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --note) note=$2; shift 2 ;;
    --ours) ours_cmd=$2; shift 2 ;;
    --ref) ref_cmd=$2; shift 2 ;;
    --ours-name) ours_name=$2; shift 2 ;;
    --ref-name) ref_name=$2; shift 2 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done
builddir=$(cd "$builddir" && pwd)
chat=$builddir/examples/chat
load=$builddir/bench/hub-load
[ -x "$chat" ] && [ -x "$load" ] || { echo "hub-run: build examples/chat and bench/hub-load first (make bench-hub)" >&2; exit 2; }
npmdir=$builddir/bench/npm
if [ ! -d "$npmdir/node_modules/ws" ]; then
    mkdir -p "$npmdir"
    cp "$top/tests/npm/package.json" "$top/tests/npm/package-lock.json" "$npmdir/"
    chmod u+w "$npmdir"/package*.json
    (cd "$npmdir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || exit 1
fi
cp "$top/bench/ws-chat-ref.mjs" "$npmdir/"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

: "${ours_cmd:=$chat --presence off}"
default_ref=0
[ -z "$ref_cmd" ] && default_ref=1 && ref_cmd="node $npmdir/ws-chat-ref.mjs"
t0=$SECONDS

run() { # SERVER_CMD hub-load args... : prints hub-load's line
    local cmd=$1; shift
    local tmp; tmp=$(mktemp)
    $cmd --host 127.0.0.1 --port 0 >"$tmp" 2>&1 &
    local spid=$! port=""
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$tmp")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "FAIL"; kill -9 $spid; rm -f "$tmp"; return; }
    timeout 180 "$load" --port "$port" --pid $spid "$@" || echo "FAIL"
    kill -TERM $spid 2>/dev/null
    for _ in $(seq 50); do kill -0 $spid 2>/dev/null || break; sleep 0.1; done
    kill -9 $spid 2>/dev/null
    wait $spid 2>/dev/null
    rm -f "$tmp"
}

val() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
median() { # of numbers on stdin; FAIL when one is missing
    sort -g | awk '{a[NR]=$1} /FAIL|^$/ {bad=1}
        END {if (NR==0 || bad) print "FAIL"; else if (NR%2) print a[(NR+1)/2];
             else printf "%g\n", (a[NR/2]+a[NR/2+1])/2}'
}

declare -A R
measure() { # NAME hub-load args...
    local name=$1; shift
    for r in $(seq "$rounds"); do
        for who in ref ours; do
            local cmd=$ref_cmd; [ $who = ours ] && cmd=$ours_cmd
            echo "hub-run: $name round $r: $who" >&2
            local line; line=$(run "$cmd" "$@")
            echo "  $line" >&2
            R[$name,$who,$r]=$line
        done
    done
}
pick() { # NAME WHO KEY : median over rounds
    for r in $(seq "$rounds"); do val "${R[$1,$2,$r]}" "$3"; done | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", b / a; else print "–" }'; }

measure f100 fanout --subs 100 --msgs 20000
measure f1000 fanout --subs 1000 --msgs 1000
measure stall fanout --subs 100 --msgs 20000 --stalled 1
measure idle idle --members 5000

row() { # LABEL NAME KEY TARGET
    local a b; a=$(pick "$2" ref "$3"); b=$(pick "$2" ours "$3")
    echo "| $1 | $a | $b | $(ratio "$a" "$b") | $4 |"
}
lat() { echo "| ↳ latency p50 / p99, µs; server CPU µs per delivery | $(pick "$1" ref p50_us) / $(pick "$1" ref p99_us); $(pick "$1" ref cpu_us_per_delivery) | $(pick "$1" ours p50_us) / $(pick "$1" ours p99_us); $(pick "$1" ours cpu_us_per_delivery) |  |  |"; }
kept() { # WHO
    awk -v a="$(pick f100 "$1" rate)" -v b="$(pick stall "$1" rate)" 'BEGIN { if (a > 0) printf "%.0f%%", 100 * b / a; else print "–" }'
}
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — hub fan-out, $(nproc) CPUs"
    echo
    [ -n "$note" ] && { echo "$note"; echo; }
    echo "| Figure | $ref_name | $ours_name | ours/ref | target |"
    echo "|---|---:|---:|---:|---|"
    row "fan-out 64 B, 1 → 100 subscribers: deliveries/s" f100 rate ""
    lat f100
    row "fan-out 64 B, 1 → 1000 subscribers: deliveries/s" f1000 rate "≥ 2.5"
    lat f1000
    row "1 → 100 + 1 stalled subscriber: deliveries/s to the healthy" stall rate ""
    echo "| ↳ healthy rate kept vs. no stalled member | $(kept ref) | $(kept ours) |  | ours ≥ 90% |"
    echo "| ↳ server VmRSS, KiB: before → at the end | $(pick stall ref rss_before_kb) → $(pick stall ref rss_kb) | $(pick stall ours rss_before_kb) → $(pick stall ours rss_kb) |  | bounded by the policy |"
    row "5000 idle members: server VmRSS per member, KiB (lower is better)" idle per_member_kb "ours ≤ 16 (absolute)"
    echo "| ↳ server VmRSS, KiB: before → with 5000 members; threads | $(pick idle ref rss_before_kb) → $(pick idle ref rss_kb); $(pick idle ref threads) | $(pick idle ours rss_before_kb) → $(pick idle ours rss_kb); $(pick idle ours threads) |  |  |"
    echo
    if [ $default_ref = 1 ]; then
        echo "- ref: \`$ref_cmd\` (node $(node --version), ws $(node -e "console.log(require('$npmdir/node_modules/ws/package.json').version)")); ours: \`$ours_cmd\` (fiber mode, default hub: drop oldest, 1024 messages per member, 1 writer thread)."
    else
        echo "- ref: \`$ref_cmd\`; ours: \`$ours_cmd\`."
    fi
    echo "- Load: \`bench/hub-load\`, one publisher keeping 32 messages in flight (sent, not yet at every reading subscriber), 2 reader threads on epoll; each message is 64 B of text, sent by the server as a ~100 B JSON frame; deliveries/s counts frames arriving at reading subscribers; latency is publish to arrival, so it includes the 32-message queue; server CPU from /proc/PID/stat over the measured part; stalled subscriber: 4 KiB receive buffer, never reads."
    echo "- Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (shared with other builds)."
    echo "- Command: \`$cmdline\` ($((SECONDS - t0)) s, $rounds round(s), medians)."
} | tee -a "$out"
