#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/cluster-run.sh — rooms across servers: three chat servers on one Redis
# (examples/chat --redis) against one chat server with the same members, in the same run.
#
#   bench/cluster-run.sh [--builddir DIR] [--rounds N] [--subs N] [--out FILE] [--note TEXT]
#
#   --builddir DIR  where examples/chat and bench/hub-load were built (default ./build)
#   --rounds N      rounds per figure, single and cluster alternating; medians (default 3)
#   --subs N        members of the room, in all (default 900: 300 on each of the three)
#   --out FILE      Markdown file the results section is appended to (default bench/RESULTS.md)
#   --note TEXT     a line under the section's heading
#
# Figures (bench/hub-load: one publisher on the first server, the members spread over the
# servers in turn; every measurement on freshly started servers and a fresh redis-server on
# a free loopback port, no persistence): fan-out of 64 B messages at saturation (32 in
# flight): deliveries/s, publish-to-arrival p50/p99, the chat servers' CPU per delivery
# (summed), Redis's CPU per message; the same room at a fixed 50 messages/s: p50/p99.
# Goals (issue 19): cluster ≥ 0.5 of the single server's deliveries/s; p99 at 50/s within
# 2 × the single server's. Runs under flock /tmp/bench.lock.
set -u -o pipefail
if [ -z "${SN_BENCH_LOCKED:-}" ]; then # one benchmark at a time on this machine
    SN_BENCH_LOCKED=1 exec flock /tmp/bench.lock "$0" "$@"
fi
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
builddir=$top/build rounds=3 subs=900 out=$top/bench/RESULTS.md note=
cmdline=$0
for arg in "$@"; do
    if [[ $arg =~ ^[-A-Za-z0-9_./=:,+]+$ ]]; then cmdline+=" $arg"; else cmdline+=" ${arg@Q}"; fi
done
usage() { sed -n '2,20p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --builddir) builddir=$2; shift 2 ;;
    --rounds) [[ ${2:-} =~ ^[1-9]$ ]] || usage; rounds=$2; shift 2 ;;
    --subs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; subs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --note) note=$2; shift 2 ;;
    *) usage ;;
    esac
done
builddir=$(cd "$builddir" && pwd)
chat=$builddir/examples/chat
load=$builddir/bench/hub-load
[ -x "$chat" ] && [ -x "$load" ] ||
    { echo "cluster-run: build examples/chat and bench/hub-load first (make bench-hub)" >&2; exit 2; }
command -v redis-server >/dev/null ||
    { echo "cluster-run: no redis-server (Debian: apt-get install redis-server)" >&2; exit 2; }
tmp=$(mktemp -d)
pids=()
stop_all() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    pids=()
}
trap 'stop_all; rm -rf "$tmp"' EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
ports= spids= rpid=
start_chat() { # flags...: appends to ports and spids
    local f=$tmp/chat${#pids[@]}
    "$chat" --port 0 --presence off --max-queue 65536 "$@" >"$f" 2>"$f.err" &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$f" ] && break; sleep 0.05; done
    local line
    line=$(head -n 1 "$f")
    case "$line" in "listening on "*) ;; *) echo "cluster-run: chat: $line $(cat "$f.err")" >&2; exit 1 ;; esac
    ports+="${ports:+,}${line##*:}"
    spids+="${spids:+,}${pids[-1]}"
}
start_single() { ports= spids= rpid=; start_chat; }
start_cluster() {
    ports= spids=
    local rport
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
        --loglevel warning >"$tmp/redis.log" 2>&1 &
    rpid=$!
    pids+=($rpid)
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && break; sleep 0.05; done
    for _ in 1 2 3; do start_chat --redis "127.0.0.1:$rport"; done
}
# measure KIND ARGS...: one hub-load fanout on fresh servers; prints its line
measure() {
    local kind=$1
    shift
    if [ "$kind" = single ]; then start_single; else start_cluster; fi
    local extra=()
    [ -n "$rpid" ] && extra=(--redis-pid "$rpid")
    "$load" --port "$ports" --pid "$spids" "${extra[@]}" fanout --subs "$subs" "$@" 2>>"$tmp/load.err"
    stop_all
}
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

declare -A v
for r in $(seq "$rounds"); do
    for kind in single cluster; do
        echo "cluster-run: round $r, $kind, saturation" >&2
        line=$(measure "$kind" --msgs 2000 --window 32)
        for k in rate p50_us p99_us cpu_us_per_delivery redis_cpu_s; do v[$kind,sat,$k]+=" $(val $k "$line")"; done
        echo "cluster-run: round $r, $kind, 50 messages/s" >&2
        line=$(measure "$kind" --msgs 250 --rate 50)
        for k in p50_us p99_us; do v[$kind,fix,$k]+=" $(val $k "$line")"; done
    done
done
m() { median ${v[$1]}; }
sr=$(m single,sat,rate) cr=$(m cluster,sat,rate)
s99=$(m single,fix,p99_us) c99=$(m cluster,fix,p99_us)
redis_per_msg=$(awk -v s="$(m cluster,sat,redis_cpu_s)" 'BEGIN { printf "%.1f", s * 1e6 / 2000 }')
{
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M') UTC — rooms across servers, $(nproc) CPUs"
    echo
    [ -n "$note" ] && echo "$note" && echo
    echo "| Figure | one server | three servers on Redis | three/one | goal |"
    echo "|---|---:|---:|---:|---|"
    echo "| fan-out 64 B to $subs members, 32 in flight: deliveries/s | $sr | $cr | $(ratio "$cr" "$sr") | ≥ 0.5 |"
    echo "| ↳ latency p50 / p99, µs | $(m single,sat,p50_us) / $(m single,sat,p99_us) | $(m cluster,sat,p50_us) / $(m cluster,sat,p99_us) |  |  |"
    echo "| ↳ chat servers' CPU per delivery, µs (summed) | $(m single,sat,cpu_us_per_delivery) | $(m cluster,sat,cpu_us_per_delivery) |  |  |"
    echo "| ↳ Redis CPU per message, µs | - | $redis_per_msg |  |  |"
    echo "| the same room at 50 messages/s: latency p50 / p99, µs | $(m single,fix,p50_us) / $s99 | $(m cluster,fix,p50_us) / $c99 | $(ratio "$c99" "$s99") (p99) | ≤ 2 |"
    echo
    echo "- Command: \`$cmdline\`; medians of $rounds rounds, one server and three alternating."
    echo "- One server: \`examples/chat --presence off --max-queue 65536\`; three: the same with"
    echo "  \`--redis\` on one \`redis-server\` $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') (no persistence), all on 127.0.0.1,"
    echo "  with bench/hub-load (one publisher on the first server, $subs members spread in turn)."
    echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), load at start $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee -a "$out"
