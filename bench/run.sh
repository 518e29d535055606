#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/run.sh — the libsocknet echo servers ("ours") against the references ("ref").
#
#   bench/run.sh [--builddir DIR] [--ours CMD] [--ref CMD] [--uours CMD] [--uref CMD]
#                [--wours CMD] [--wref CMD] [--wlws CMD] [--wfloor CMD] [--bref CMD]
#                [--loadgen PATH] [--wsloadgen PATH]
#                [--out FILE]
#                [--only tcp|udp|local|ws] [--quick] [--rounds N] [--idle-conns N]
#                [--note TEXT]
#
#   --builddir DIR  where the programs were built (`make bench` passes its own; default: the
#                   current directory if it holds bench/sn-loadgen, else ./build)
#   --ours CMD      server under test (env OURS; default DIR/examples/echo-server --workers 4096)
#   --ref CMD       reference server (env REF; default DIR/bench/epoll-echo)
#   --uours CMD     UDP server under test (env UOURS; default DIR/examples/udp-echo)
#   --uref CMD      UDP reference server (env UREF; default DIR/bench/udp-echo-ref)
#   --wours CMD     WebSocket server under test (env WOURS; default DIR/examples/ws-echo)
#   --wref CMD      WebSocket reference (env WREF; default: bench/ws-echo-ref.js under node,
#                   on the npm ws package of bench/package.json, which this script installs
#                   into DIR/bench/ws-ref with npm when it is not there yet)
#   --wlws CMD      the libwebsockets echo (env WLWS; default DIR/bench/lws-echo when it was
#                   built; "" for none): measured after ours in the 32 B echo rows
#   --bref CMD      the blocking echo (env BREF; default DIR/bench/block-echo; "" for none):
#                   measured after ours in the bulk row
#   --wfloor CMD    the WebSocket floor (env WFLOOR; default DIR/bench/ws-floor; "" for none):
#                   measured in the same rounds as ws and ours for the 32 B echo rows, in a
#                   row of its own, to show what the machine leaves to any server
#   --loadgen PATH  load generator (env LOADGEN; default DIR/bench/sn-loadgen)
#   --wsloadgen PATH  WebSocket load generator (env WSLOADGEN; default DIR/bench/ws-loadgen)
#   --out FILE      Markdown file the results section is appended to (default bench/RESULTS.md)
#   --only WHICH    only the TCP figures, only the UDP ones, only the local-socket ones (with
#                   TCP ping-pong at 1 and 16 conns beside them) or only the WebSocket ones;
#                   default: all
#   --quick         shorter runs, one round: about 50 s per group (on 2 CPUs, with a fast server)
#   --rounds N      rounds per throughput figure, ref and ours alternating; the table shows
#                   the median of each and the range of the per-round ratios (default 3,
#                   with --quick 1; a full run with 3 rounds takes about 5 minutes per group)
#   --idle-conns N  connections in the idle-memory rows (default 2000; up to 19,000 on a
#                   machine with 20,000 descriptors per process: the load generator and the
#                   server each hold N)
#   --note TEXT     a line of text put under the section's heading
#
# Each server command gets "--host 127.0.0.1 --port 0" appended and must print
# "listening on H:PORT" on stdout (the UDP ones get "--batch B" too for the batch figure, the
# WebSocket reference "--deflate" for the deflate figure); for the local-socket rows the TCP
# servers get "--unix PATH" instead and must print "listening on unix:PATH".
# Every measurement runs on a freshly started server, ref then ours, round after round. Progress goes to stderr, the
# results section to stdout and FILE. Exit status 1 if any measurement failed (its cell says
# FAIL), 2 on bad usage.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
builddir=
ours=${OURS:-}
ref=${REF:-}
uours=${UOURS:-}
uref=${UREF:-}
wours=${WOURS:-}
wref=${WREF:-}
[ -n "${WFLOOR+set}" ] && wfloor=$WFLOOR
[ -n "${WLWS+set}" ] && wlws=$WLWS
[ -n "${BREF+set}" ] && bref=$BREF
loadgen=${LOADGEN:-}
wsloadgen=${WSLOADGEN:-}
out=
only=
rounds=
quick=0
idle_conns=
note=
cmdline=$0
for arg in "$@"; do # the exact command, quoted only where the shell needs it
    if [[ $arg =~ ^[-A-Za-z0-9_./=:,+]+$ ]]; then cmdline+=" $arg"; else cmdline+=" ${arg@Q}"; fi
done

usage() { # [STATUS]
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    case $1 in
    --builddir) [ $# -ge 2 ] || usage; builddir=$2; shift 2 ;;
    --ours) [ $# -ge 2 ] || usage; ours=$2; shift 2 ;;
    --ref) [ $# -ge 2 ] || usage; ref=$2; shift 2 ;;
    --uours) [ $# -ge 2 ] || usage; uours=$2; shift 2 ;;
    --uref) [ $# -ge 2 ] || usage; uref=$2; shift 2 ;;
    --wours) [ $# -ge 2 ] || usage; wours=$2; shift 2 ;;
    --wref) [ $# -ge 2 ] || usage; wref=$2; shift 2 ;;
    --wfloor) [ $# -ge 2 ] || usage; wfloor=$2; shift 2 ;;
    --wlws) [ $# -ge 2 ] || usage; wlws=$2; shift 2 ;;
    --bref) [ $# -ge 2 ] || usage; bref=$2; shift 2 ;;
    --only) [ $# -ge 2 ] && [[ $2 =~ ^(tcp|udp|local|ws)$ ]] || usage; only=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] && [[ $2 =~ ^[1-9]$ ]] || usage; rounds=$2; shift 2 ;;
    --loadgen) [ $# -ge 2 ] || usage; loadgen=$2; shift 2 ;;
    --wsloadgen) [ $# -ge 2 ] || usage; wsloadgen=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --idle-conns) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || usage; idle_conns=$2; shift 2 ;;
    --note) [ $# -ge 2 ] || usage; note=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
    esac
done
if [ -z "$builddir" ]; then
    if [ -x bench/sn-loadgen ]; then builddir=.; else builddir=build; fi
fi
: "${ours:=$builddir/examples/echo-server --workers 4096}"
: "${ref:=$builddir/bench/epoll-echo}"
: "${uours:=$builddir/examples/udp-echo}"
: "${uref:=$builddir/bench/udp-echo-ref}"
: "${loadgen:=$builddir/bench/sn-loadgen}"
: "${wsloadgen:=$builddir/bench/ws-loadgen}"
: "${wours:=$builddir/examples/ws-echo}"
: "${wfloor=$builddir/bench/ws-floor}"
: "${bref=$builddir/bench/block-echo}"
if [ -z "${wlws+set}" ]; then
    wlws=$builddir/bench/lws-echo
    if [ ! -x "$wlws" ]; then
        echo "run.sh: no $wlws (configure found no libwebsockets: apt-get install" \
            "libwebsockets-dev, configure again, make bench/lws-echo): the libwebsockets rows" \
            "are left out" >&2
        wlws=
    fi
fi
ws_modules=$builddir/bench/ws-ref/node_modules
default_wref=0
if [ -z "$wref" ]; then
    wref="env NODE_PATH=$ws_modules node $here/ws-echo-ref.js"
    default_wref=1
fi
: "${out:=$here/RESULTS.md}"

if [ "$quick" = 1 ]; then
    pp_secs=2 pp_warm=0.5 bulk_count=2000 conn_secs=2
    : "${rounds:=1}"
else
    pp_secs=5 pp_warm=1 bulk_count=8000 conn_secs=5
    : "${rounds:=3}"
fi
: "${idle_conns:=2000}"
host=127.0.0.1

run_tcp=1 run_udp=1 run_local=1 run_ws=1
if [ -n "$only" ]; then
    [ "$only" = tcp ] || run_tcp=0
    [ "$only" = udp ] || run_udp=0
    [ "$only" = local ] || run_local=0
    [ "$only" = ws ] || run_ws=0
fi
bins=()
[ $run_tcp = 1 ] || [ $run_udp = 1 ] || [ $run_local = 1 ] && bins+=("$loadgen")
[ $run_tcp = 1 ] || [ $run_local = 1 ] && bins+=("${ref%% *}" "${ours%% *}")
[ $run_udp = 1 ] && bins+=("${uref%% *}" "${uours%% *}")
[ $run_ws = 1 ] && bins+=("$wsloadgen" "${wref%% *}" "${wours%% *}")
[ $run_ws = 1 ] && [ -n "$wfloor" ] && bins+=("${wfloor%% *}")
[ $run_ws = 1 ] && [ -n "$wlws" ] && bins+=("${wlws%% *}")
[ $run_tcp = 1 ] && [ -n "$bref" ] && bins+=("${bref%% *}")
for bin in "${bins[@]}"; do
    if ! command -v "$bin" >/dev/null; then
        echo "run.sh: $bin: not a command (build it, or see --builddir/--ours/--ref/--loadgen)" \
            >&2
        exit 1
    fi
done

# The npm ws package of bench/package.json (pinned), installed once into DIR/bench/ws-ref.
if [ $run_ws = 1 ] && [ $default_wref = 1 ] && [ ! -f "$ws_modules/ws/package.json" ]; then
    echo "run.sh: npm install into $builddir/bench/ws-ref (bench/package.json)" >&2
    mkdir -p "$builddir/bench/ws-ref" && cp "$here/package.json" "$builddir/bench/ws-ref/" &&
        (cd "$builddir/bench/ws-ref" && timeout 300 npm install --no-package-lock --no-audit \
            --no-fund --loglevel=error >npm.log 2>&1) || {
        echo "run.sh: npm install failed (see $builddir/bench/ws-ref/npm.log)" >&2
        exit 1
    }
fi

# sn-loadgen holds up to 2000 client sockets and the server as many; both inherit this limit
# (and raise their own soft limit to the hard one as well).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_conns + 200)) ]; then
    echo "run.sh: ulimit -n is $(ulimit -n); need at least $((idle_conns + 200))" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sn-bench.XXXXXX") || exit 1
pids=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    [ ${#pids[@]} -gt 0 ] && sleep 0.3
    for p in "${pids[@]}"; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget PID: drops a reaped process from the cleanup list
forget() {
    local p keep=()
    for p in "${pids[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

log() { echo "run.sh: $*" >&2; }
failed=0

# wait_line FILE REGEX SECS PID: waits for a line matching REGEX in FILE while PID lives;
# sets wl_line to the first such line (read once: the file is not read again)
wl_line=
wait_line() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        wl_line=$(grep -m 1 -E "$2" "$1" 2>/dev/null) && return 0
        kill -0 "$4" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_server NAME: starts ref, ours, uref, uours, wref or wours on port 0 (or, when
# local_sock is set, on that local socket path), with the extra arguments in the array
# srv_extra (and in wref_extra or wours_extra); sets srv_pid, srv_port and target (the
# loadgen's arguments that reach the server)
srv_extra=()
wref_extra=()
wours_extra=()
local_sock=
start_server() {
    local name=$1 cmd
    case $name in
    ref) cmd=$ref ;;
    ours) cmd=$ours ;;
    wfloor) cmd=$wfloor ;;
    wlws) cmd=$wlws ;;
    bref) cmd=$bref ;;
    uref) cmd=$uref ;;
    uours) cmd=$uours ;;
    uours64) cmd="$uours --workers 64" ;;
    wref) cmd="$wref ${wref_extra[*]}" ;;
    *) cmd="$wours ${wours_extra[*]}" ;;
    esac
    local where=(--host "$host" --port 0) line='^listening on .*:[0-9]+$'
    if [ -n "$local_sock" ]; then
        where=(--unix "$local_sock")
        line="^listening on unix:$local_sock\$"
    fi
    # shellcheck disable=SC2086  # CMD is a command line: split it into words
    $cmd "${where[@]}" "${srv_extra[@]}" >"$tmp/$name.out" 2>>"$tmp/$name.err" &
    srv_pid=$!
    pids+=("$srv_pid")
    if ! wait_line "$tmp/$name.out" "$line" 10 "$srv_pid"; then
        log "$name: no '${line//[\^\$]/}' line from: $cmd ${where[*]}"
        tail -n 5 "$tmp/$name.err" >&2
        stop_server
        return 1
    fi
    srv_port=${wl_line##*:}
    if [ -z "$local_sock" ] && ! [[ $srv_port =~ ^[0-9]+$ ]]; then
        log "$name: no port in its 'listening on' line: $wl_line"
        stop_server
        return 1
    fi
    target=(--host "$host" --port "$srv_port")
    [ -n "$local_sock" ] && target=(--unix "$local_sock")
    return 0
}

stop_server() {
    local i
    kill -TERM "$srv_pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
    forget "$srv_pid"
}

# field NAME LINE: the value of NAME=... in a result line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# run_load NAME SUBCOMMAND ARGS...: one run of the load generator (sn-loadgen, or ws-loadgen
# for wref and wours) on a fresh server; sets res to the "result ..." line, or to "" if the
# run or the server failed
run_load() {
    local name=$1 sub=$2 lg=$loadgen
    shift 2
    res=
    [[ $name == w* ]] && lg=$wsloadgen
    start_server "$name" || { failed=1; return; }
    local cpu=()
    case $sub in echo | pingpong | udp-pingpong) cpu=(--server-pid "$srv_pid") ;; esac
    if timeout --foreground -k 5 120 "$lg" "$sub" "${target[@]}" "$@" "${cpu[@]}" \
        >"$tmp/load.out" 2>"$tmp/load.err"; then
        res=$(grep -m 1 '^result ' "$tmp/load.out")
    fi
    cat "$tmp/load.err" >>"$tmp/loadgen.err"
    if [ -n "$res" ]; then
        log "$name: $res"
    else
        log "$name: FAILED: ${lg##*/} $sub ${target[*]} $*"
        tail -n 3 "$tmp/load.err" >&2
        log "$name: server stderr: $(tail -n 3 "$tmp/$name.err" | tr '\n' ' ')"
        failed=1
    fi
    if ! kill -0 "$srv_pid" 2>/dev/null; then
        log "$name: server died"
        tail -n 5 "$tmp/$name.err" >&2
        res=
        failed=1
    fi
    stop_server
}

status_field() { sed -n "s/^$2:[[:space:]]*\([0-9]*\).*/\1/p" "/proc/$1/status"; }

# run_idle NAME: sets idle_res to "rss_before_kib rss_with_kib threads", or "" on failure
# (sn-loadgen idle, or ws-loadgen idle for wref and wours)
run_idle() {
    local name=$1 before lpid lg=$loadgen
    idle_res=
    [[ $name == w* ]] && lg=$wsloadgen
    start_server "$name" || { failed=1; return; }
    sleep 0.3
    before=$(status_field "$srv_pid" VmRSS)
    "$lg" idle --host "$host" --port "$srv_port" --conns "$idle_conns" --hold 60 \
        >"$tmp/idle.out" 2>>"$tmp/loadgen.err" &
    lpid=$!
    pids+=("$lpid")
    if wait_line "$tmp/idle.out" "^idle $idle_conns ready$" 60 "$lpid"; then
        sleep 0.5 # let the server settle (threads parked, buffers trimmed)
        idle_res="$before $(status_field "$srv_pid" VmRSS) $(status_field "$srv_pid" Threads)"
        log "$name: VmRSS KiB before / with $idle_conns idle, threads: $idle_res"
    else
        log "$name: FAILED: idle $idle_conns"
        tail -n 3 "$tmp/loadgen.err" >&2
        failed=1
    fi
    kill -TERM "$lpid" 2>/dev/null
    wait "$lpid" 2>/dev/null
    forget "$lpid"
    if ! kill -0 "$srv_pid" 2>/dev/null; then
        log "$name: server died"
        idle_res=
        failed=1
    fi
    stop_server
}

ratio() { # OURS REF
    if [ -n "$1" ] && [ -n "$2" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
    else
        echo "n/a"
    fi
}
orfail() { if [ -n "$1" ]; then echo "$1"; else echo FAIL; fi; }

rows=()
add_row() { rows+=("| $1 | $(orfail "$2") | $(orfail "$3") | $4 | $5 |"); }

# lat RESULT: "p50 / p99 / p99.9", plus the number of starved connections if any
lat() {
    local p n
    [ -n "$1" ] || return
    p="$(field p50_us "$1") / $(field p99_us "$1") / $(field p999_us "$1")"
    n=$(field starved "$1")
    case $n in
    "" | 0) echo "$p" ;;
    *) echo "$p ($n conns starved)" ;;
    esac
}

# median_index VALUES...: the index of the median of the non-empty values (the lower middle
# one), or nothing when every value is empty
median_index() {
    local i
    for ((i = 1; i <= $#; i++)); do
        [ -n "${!i}" ] && echo "$((i - 1)) ${!i}"
    done | sort -k2 -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

# measure REF OURS FIELD SUBCOMMAND ARGS...: the load `rounds` times on each server, ref and
# ours alternating (so that a slow spell of the machine hits both); sets m_ref and m_ours
# (the medians of FIELD), m_rres and m_ores (the result lines of those rounds), m_ratio (of
# the medians) and m_range (" (lowest–highest per-round ratio)" when rounds > 1). With
# server names in the array m_extras, each runs after ours in every round, and for the j-th
# of them: m_xval[j] (its median), m_xres[j] (that round's result line), m_xratio[j] (ours
# against it, medians) and m_xrange[j] (the per-round ratios of ours to it), m_xref[j] and
# m_xrefrange[j] (it against ref, the same way).
m_extras=()
measure() {
    local rn=$1 on=$2 f=$3 i j k q x
    shift 3
    local rv=() ov=() rl=() ol=() qs=()
    local -A xv=() xl=() xq=() xr=()
    for ((i = 0; i < rounds; i++)); do
        run_load "$rn" "$@"
        rl+=("$res")
        rv+=("$(field "$f" "$res")")
        run_load "$on" "$@"
        ol+=("$res")
        ov+=("$(field "$f" "$res")")
        q=$(ratio "${ov[i]}" "${rv[i]}")
        [ "$q" != n/a ] && qs+=("$q")
        for j in "${!m_extras[@]}"; do
            run_load "${m_extras[j]}" "$@"
            xl[$j,$i]=$res
            xv[$j,$i]=$(field "$f" "$res")
            q=$(ratio "${ov[i]}" "${xv[$j,$i]}")
            [ "$q" != n/a ] && xq[$j]+="$q "
            q=$(ratio "${xv[$j,$i]}" "${rv[i]}")
            [ "$q" != n/a ] && xr[$j]+="$q "
        done
    done
    m_ref='' m_ours='' m_rres='' m_ores='' m_range=''
    m_xval=() m_xres=() m_xratio=() m_xrange=() m_xref=() m_xrefrange=()
    k=$(median_index "${rv[@]}")
    [ -n "$k" ] && m_ref=${rv[k]} m_rres=${rl[k]}
    k=$(median_index "${ov[@]}")
    [ -n "$k" ] && m_ours=${ov[k]} m_ores=${ol[k]}
    m_ratio=$(ratio "$m_ours" "$m_ref")
    m_range=$(ratio_range "${qs[@]}")
    for j in "${!m_extras[@]}"; do
        x=()
        for ((i = 0; i < rounds; i++)); do x+=("${xv[$j,$i]}"); done
        k=$(median_index "${x[@]}")
        m_xval[j]='' m_xres[j]=''
        [ -n "$k" ] && m_xval[j]=${x[k]} m_xres[j]=${xl[$j,$k]}
        m_xratio[j]=$(ratio "$m_ours" "${m_xval[j]}")
        m_xref[j]=$(ratio "${m_xval[j]}" "$m_ref")
        # shellcheck disable=SC2086  # the ratios are words
        m_xrange[j]=$(ratio_range ${xq[$j]:-})
        # shellcheck disable=SC2086
        m_xrefrange[j]=$(ratio_range ${xr[$j]:-})
    done
}

# ratio_range RATIOS...: " (lowest–highest)" of the per-round ratios, or nothing with
# fewer than two (or one round)
ratio_range() {
    [ "$rounds" -gt 1 ] && [ $# -gt 1 ] || return 0
    echo " ($(printf '%s\n' "$@" | sort -g | head -n 1)–$(printf '%s\n' "$@" | sort -g |
        tail -n 1))"
}

pingpong_figure() { # CONNS TARGET [LABEL]
    local conns="$1 conns"
    [ "$1" = 1 ] && conns="1 conn"
    measure ref ours msgs_per_s pingpong --conns "$1" --size 64 --seconds "$pp_secs" \
        --warmup "$pp_warm"
    add_row "${3:-pingpong} 64 B, $conns: round trips/s" "$m_ref" "$m_ours" "$m_ratio$m_range" \
        "$2"
    add_row "↳ latency p50 / p99 / p99.9, µs" "$(lat "$m_rres")" "$(lat "$m_ores")" "" ""
    cpu_rows "${4:-}"
}

# cpu_rows [CSW-TARGET]: the CPU and context-switch rows of the last measure's median rounds
cpu_rows() {
    add_row "↳ CPU per message, µs: server + load generator (lower is better)" \
        "$(cpu_pair "$m_rres")" "$(cpu_pair "$m_ores")" \
        "$(ratio "$(field server_cpu_us "$m_ores")" "$(field server_cpu_us "$m_rres")")" ""
    add_row "↳ server context switches per message: all (sleeps) (lower is better)" \
        "$(csw_pair "$m_rres")" "$(csw_pair "$m_ores")" "" "${1:-}"
}

bulk_figure() {
    m_extras=()
    [ -n "$bref" ] && m_extras=(bref)
    measure ref ours mib_per_s bulk --size 1048576 --count "$bulk_count"
    add_row "bulk 1 MiB × $bulk_count, one conn: MiB/s" "$m_ref" "$m_ours" "$m_ratio$m_range" \
        "≥ 1.0"
    if [ -n "$bref" ]; then
        rows+=("| ↳ bench/block-echo, a blocking thread per connection: MiB/s; ours / it | — |\
 $(orfail "${m_xval[0]}") | ${m_xratio[0]}${m_xrange[0]} | ≥ 1.0 |")
    fi
    m_extras=()
}

connect_figure() {
    measure ref ours conns_per_s connect --seconds "$conn_secs" --threads 2
    add_row "connect + 1 B echo + close: conns/s" "$m_ref" "$m_ours" "$m_ratio$m_range" "≥ 1.0"
}

per_conn() { # BEFORE WITH THREADS
    [ $# -eq 3 ] &&
        awk -v a="$1" -v b="$2" -v n="$idle_conns" 'BEGIN { printf "%.2f", (b - a) / n }'
}
rss() { [ $# -eq 3 ] && echo "$1 → $2"; }

# idle_figure REF OURS WHAT TARGET: the servers' memory with idle_conns idle connections
idle_figure() {
    local ri oi rp op
    run_idle "$1"
    read -ra ri <<<"$idle_res"
    run_idle "$2"
    read -ra oi <<<"$idle_res"
    rp=$(per_conn "${ri[@]}")
    op=$(per_conn "${oi[@]}")
    add_row "${3}server VmRSS, KiB: before → with $idle_conns idle ${3}conns" \
        "$(rss "${ri[@]}")" "$(rss "${oi[@]}")" "" ""
    add_row "RSS per idle ${3}conn, KiB (lower is better)" "$rp" "$op" "$(ratio "$op" "$rp")" \
        "$4"
    add_row "${3}server threads with $idle_conns idle ${3}conns" "${ri[2]:-}" "${oi[2]:-}" "" ""
}

# udp_figure SOCKETS BATCH: udp-pingpong of 64-byte datagrams, BATCH in flight per socket
# (sendmmsg / recvmmsg from the client, and --batch BATCH for both servers when above 1)
udp_figure() {
    local label socks="$1 socks"
    [ "$1" = 1 ] && socks="1 sock"
    srv_extra=()
    m_extras=()
    [ "$2" -gt 1 ] && srv_extra=(--batch "$2")
    [ "$2" = 1 ] && m_extras=(uours64)
    measure uref uours msgs_per_s udp-pingpong --conns "$1" --size 64 --batch "$2" \
        --seconds "$pp_secs" --warmup "$pp_warm"
    srv_extra=()
    if [ "$2" = 1 ]; then
        label="udp pingpong 64 B, $socks: round trips/s"
    else
        label="udp batch $2 × 64 B in flight, $socks: datagrams/s"
    fi
    add_row "$label" "$m_ref" "$m_ours" "$m_ratio$m_range" "$([ "$2" = 1 ] && echo "≥ 1.0")"
    add_row "↳ latency p50 / p99 / p99.9, µs (per round)" "$(lat "$m_rres")" "$(lat "$m_ores")" \
        "" ""
    cpu_rows
    if [ "$2" = 1 ]; then
        rows+=("| ↳ ours with \`--workers 64\`: round trips/s; its CPU; its context switches;\
 it / ref | — | $(orfail "${m_xval[0]}"); $(cpu_pair "${m_xres[0]}");\
 $(csw_pair "${m_xres[0]}") | ${m_xref[0]}${m_xrefrange[0]} | ≥ 1.0 |")
        rows+=("| ↳ its latency p50 / p99 / p99.9, µs (per round) | — | $(lat "${m_xres[0]}") | | |")
    fi
    m_extras=()
}

# ws_echo_figure CONNS SIZE FIELD LABEL TARGET WS-LOADGEN-ARGS...: ws-loadgen echo; with
# with_peers=1 the libwebsockets echo and the floor server too (plain echoes only: neither
# deflates)
with_peers=0
ws_echo_figure() {
    local conns=$1 size=$2 f=$3 label=$4 goal=$5 j x xgoal
    shift 5
    m_extras=()
    if [ "$with_peers" = 1 ]; then
        [ -n "$wlws" ] && m_extras+=(wlws)
        [ -n "$wfloor" ] && m_extras+=(wfloor)
    fi
    measure wref wours "$f" echo --conns "$conns" --size "$size" --seconds "$pp_secs" \
        --warmup "$pp_warm" "$@"
    add_row "$label" "$m_ref" "$m_ours" "$m_ratio$m_range" "$goal"
    add_row "↳ latency p50 / p99 / p99.9, µs" "$(lat "$m_rres")" "$(lat "$m_ores")" "" ""
    cpu_rows
    for j in "${!m_extras[@]}"; do
        case ${m_extras[j]} in
        wlws) x="libwebsockets (bench/lws-echo, one service thread)" ;;
        *) x="bench/ws-floor, the least any server does" ;;
        esac
        xgoal=
        [ "${m_extras[j]}" = wlws ] && xgoal="≥ 1.0"
        rows+=("| ↳ $x: round trips/s; CPU as above; context switches as above; ours / it | — |\
 $(orfail "${m_xval[j]}"); $(cpu_pair "${m_xres[j]}"); $(csw_pair "${m_xres[j]}") |\
 ${m_xratio[j]}${m_xrange[j]} | $xgoal |")
        rows+=("| ↳ its latency p50 / p99 / p99.9, µs | — | $(lat "${m_xres[j]}") | | |")
    done
    m_extras=()
}

# csw_pair RESULT: "all (sleeps)" context switches per message of a result line
csw_pair() {
    [ -n "$1" ] && [ -n "$(field server_csw "$1")" ] &&
        echo "$(field server_csw "$1") ($(field server_sleeps "$1"))"
}

# cpu_pair RESULT: "server + client" CPU µs per exchange of a ws-loadgen echo result
cpu_pair() {
    [ -n "$1" ] && [ -n "$(field server_cpu_us "$1")" ] &&
        echo "$(field server_cpu_us "$1") + $(field client_cpu_us "$1")"
}

# 4 blocking client threads: with 2, a handshake's round trips leave both servers idle
# between steps and the figure is mostly latency; ws saturates its one thread at 4
handshake_figure() {
    measure wref wours handshakes_per_s handshake --seconds "$conn_secs" --threads 4
    add_row "ws upgrade + close handshake + RST: handshakes/s" "$m_ref" "$m_ours" \
        "$m_ratio$m_range" "≥ 2.0"
}

log "loadgen=$loadgen ref='$ref' ours='$ours' uref='$uref' uours='$uours' quick=$quick"
[ $run_ws = 1 ] && log "wsloadgen=$wsloadgen wref='$wref' wours='$wours'"
load_at_start=$(cut -d ' ' -f 1-3 /proc/loadavg)
t_start=$SECONDS
if [ $run_tcp = 1 ]; then
    pingpong_figure 1 "≥ 1.0"
    pingpong_figure 16 "≥ 1.0; p99.9 ≤ 2 × ref" "" "≤ 0.1"
    pingpong_figure 256 "≥ 1.0" "" "≤ 0.1"
    pingpong_figure 2000 "≥ 1.0" "" "≤ 0.1"
    bulk_figure
    connect_figure
    idle_figure ref ours "" "ours ≤ 16"
fi
if [ $run_local = 1 ]; then
    # local (Unix-domain) sockets: the same servers with --unix, next to TCP at 1 and 16 conns
    # (measured here unless the TCP rows above already were, in this same run)
    if [ $run_tcp = 0 ]; then
        pingpong_figure 1 "—" "tcp pingpong"
        pingpong_figure 16 "—" "tcp pingpong"
    fi
    local_sock=$tmp/echo.sock
    pingpong_figure 1 "—" "local pingpong"
    pingpong_figure 16 "—" "local pingpong"
    local_sock=
fi
if [ $run_udp = 1 ]; then
    udp_figure 1 1
    udp_figure 16 1
    udp_figure 4 16
fi
if [ $run_ws = 1 ]; then
    with_peers=1
    ws_echo_figure 1 32 msgs_per_s "ws echo 32 B text, 1 conn: round trips/s" "—"
    ws_echo_figure 64 32 msgs_per_s "ws echo 32 B text, 64 conns: round trips/s" "≥ 2.0"
    ws_echo_figure 1000 32 msgs_per_s "ws echo 32 B text, 1000 conns: round trips/s" "≥ 2.0"
    with_peers=0
    ws_echo_figure 16 65536 mib_per_s "ws echo 64 KiB binary, 16 conns: MiB/s each way" "≥ 1.5" \
        --binary
    [ $default_wref = 1 ] && wref_extra=(--deflate) # another build's ws-echo deflates already
    ws_echo_figure 16 4096 msgs_per_s \
        "ws echo 4 KiB compressible text, permessage-deflate, 16 conns: round trips/s" "≥ 3.0" \
        --compressible --deflate
    if [ $default_wref = 1 ] && [ "$wours" = "$builddir/examples/ws-echo" ]; then # ws's zlib level
        wours_extra=(--deflate-level 6)
        ws_echo_figure 16 4096 msgs_per_s "↳ the same, ours at zlib level 6 as ws: round trips/s" \
            "—" --compressible --deflate
        wours_extra=()
    fi
    wref_extra=()
    handshake_figure
    idle_figure wref wours "ws " "—"
fi

ws_version() {
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$ws_modules/ws/package.json" 2>/dev/null |
        head -n 1
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
{
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $(nproc) CPUs, ${cpu:-unknown CPU}"
    echo
    [ -n "$note" ] && printf '%s\n\n' "$note"
    echo "| Figure | ref | ours | ours/ref | target |"
    echo "|---|---:|---:|---:|---|"
    printf '%s\n' "${rows[@]}"
    echo
    [ $run_tcp = 1 ] || [ $run_local = 1 ] && echo "- ref: \`$ref\`; ours: \`$ours\`;" \
        "ours/ref > 1 means ours is" \
        "faster (for RSS: bigger)."
    [ $run_local = 1 ] && echo "- local rows: the same ref and ours with \`--unix PATH\`" \
        "instead of \`--host --port\`; sn-loadgen \`--unix PATH\`."
    [ $run_udp = 1 ] && echo "- udp ref: \`$uref\`; udp ours: \`$uours\` (\`--batch 16\` added to" \
        "both for the batch row); sn-loadgen udp-pingpong, loss counted after 200 ms."
    [ $run_ws = 1 ] && echo "- ws ref: \`$wref\` (ws $(ws_version), \`--deflate\` added for the" \
        "deflate rows); ws ours: \`$wours\` (zlib level 1 by default; \`--deflate-level 6\` for" \
        "the level-6 row); ws-loadgen echo (2 threads, one message in flight per connection," \
        "every echo verified) and handshake (4 threads)."
    [ $run_tcp = 1 ] && [ -n "$bref" ] && echo "- bulk also against \`$bref\`: a thread per" \
        "connection, blocking read and write of 128 KiB, run after ours in each round."
    [ $run_ws = 1 ] && [ -n "$wlws" ] && echo "- libwebsockets: \`$wlws\` (libwebsockets" \
        "$(pkg-config --modversion libwebsockets 2>/dev/null || echo '(version unknown)'), one" \
        "service thread, UTF-8 validated), run after ours in each round of the 32 B echo rows."
    [ $run_ws = 1 ] && [ -n "$wfloor" ] && echo "- ws-floor: \`$wfloor\`, the least a" \
        "WebSocket echo server can do (2 epoll threads with their own SO_REUSEPORT listeners," \
        "frames echoed as read: no UTF-8 check, no limits, no deadlines, no locks), run last" \
        "in each round of the 32 B echo rows: what this machine's kernel and CPUs leave to any" \
        "server under this load generator. (With large messages it is no floor: it reads 64 KiB" \
        "at a time and copies, so it is not measured there.)"
    echo "- Machine: $(nproc) CPUs (\`nproc\`), ${cpu:-unknown CPU}, Linux $(uname -r)," \
        "load average at start $load_at_start."
    echo "- Command: \`$cmdline\` ($((SECONDS - t_start)) s)."
    echo "- sn-loadgen: 2 client threads; pingpong ${pp_secs} s measured after ${pp_warm} s" \
        "warm-up per point; every measurement on a freshly started server; all traffic on $host."
    if [ "$rounds" -gt 1 ]; then
        echo "- $rounds rounds per throughput figure, ref and ours alternating: each cell is the" \
            "median round, the ratio is of the medians, and in brackets the lowest and highest" \
            "ratio of a single round (how much the machine wavered)."
    fi
    echo
} >"$tmp/section.md"
if [ ! -s "$out" ]; then
    {
        printf '# libsocknet benchmark results\n\n'
        # shellcheck disable=SC2016  # the backquotes are Markdown
        printf 'Appended by `bench/run.sh`, newest last; see `bench/README` for the figures.\n\n'
    } >"$out" || failed=1
fi
cat "$tmp/section.md" >>"$out" || failed=1
cat "$tmp/section.md"
log "appended the results to $out"
exit "$failed"
