#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The chat demo with real peers: examples/chat prints "listening on H:PORT"
# and serves its page; the npm `ws` client (200 clients in one room, none
# losing a message, all in one order; a 70,000-byte text reaches the room
# whole with the default flags; with --max-text 1000 a longer text gets a
# notice to its sender alone, and one over 4,000 bytes close 1009; bad rooms
# and names get close 1008 with a reason, a binary message a notice; with
# --policy wait a text some member was too slow for a notice); the page
# in headless Chromium (two pages, both sending, the same order on both; a
# text over --max-text shows the notice on the sender's page only; a
# screenshot is kept as tests/chat-browser.png next to this test's log);
# SIGTERM sends close 1001 to every member and exits 0 within 20 s (else the
# stacks of its threads are printed). Rooms across servers (--redis): a
# redis-server of the test's own on a free loopback port and three chat
# servers on it; 60 clients spread over them see one order; with Redis
# stopped a text gets the notice "not-sent"; after a restart of Redis every
# member is closed with 1012 (skipped, and said, without redis-server or a
# libsocknet with hiredis). The npm packages (pinned in tests/npm) are
# installed into tests/chat-npm of the build tree; without node, npm or the
# registry the test is skipped; without /usr/bin/chromium (SN_CHROMIUM) the
# rest runs and the test then ends as skipped (77), naming the browser part.
set -u
src=${top_srcdir:-.}
b=${top_builddir:-.}
chat=$b/examples/chat
chromium=${SN_CHROMIUM:-/usr/bin/chromium}
[ -x "$chat" ] || { echo "chat not built"; exit 77; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "no node/npm"; exit 77; }
npmdir=$b/tests/chat-npm
if [ ! -d "$npmdir/node_modules/ws" ] || [ ! -d "$npmdir/node_modules/playwright-core" ]; then
    mkdir -p "$npmdir"
    cp "$src/tests/npm/package.json" "$src/tests/npm/package-lock.json" "$npmdir/"
    chmod u+w "$npmdir"/package*.json
    (cd "$npmdir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) ||
        { echo "npm ci failed (offline?)"; exit 77; }
fi
export NODE_PATH=$npmdir/node_modules
tmp=$(mktemp -d)
pid=""
rpids="" # the Redis part's chat servers and redis-server
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    for p in $rpids; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$tmp/err" 2>/dev/null; exit 1; }
# node resolves imports next to the script: run copies from the npm dir
cp "$src/tests/chat-clients.mjs" "$src/tests/chat-browser.mjs" "$npmdir/"

start_chat() { # flags...: sets pid, port and base
    rm -f "$tmp/out"
    "$chat" --port 0 "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do [ -s "$tmp/out" ] && break; sleep 0.05; done
    line=$(head -n 1 "$tmp/out")
    case "$line" in "listening on 127.0.0.1:"*) ;; *) fail "chat printed '$line'" ;; esac
    port=${line##*:}
    base=ws://127.0.0.1:$port
}

stop_chat() { # what: SIGTERM, then chat must exit 0 within 20 s (its stop takes 2 s)
    kill -TERM "$pid"
    for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
        command -v gdb >/dev/null &&
            gdb -p "$pid" -batch -nx -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)'
        fail "chat $1 still running 20 s after SIGTERM"
    fi
    local rc=0
    wait "$pid" || rc=$?
    pid=""
    [ $rc = 0 ] || fail "chat $1 exited $rc after SIGTERM"
}

# --max-text: a text over it gets a notice, one over 4 times it close 1009
start_chat --max-text 1000
node "$npmdir/chat-clients.mjs" limit "$base" 1000 || fail "--max-text 1000"
stop_chat --max-text 1000

# --policy wait: a text that a member was too slow for gets a notice
start_chat --policy wait --max-queue 1
node "$npmdir/chat-clients.mjs" slow "$base" || fail "--policy wait"
stop_chat "--policy wait"

start_chat --workers 512 --max-queue 65536

page=$(curl -s "http://127.0.0.1:$port/") || fail "GET / failed"
case "$page" in *"<title>socknet chat</title>"*) ;; *) fail "GET / is not the chat page" ;; esac
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nowhere")" = 404 ] ||
    fail "an unknown path is not 404"
curl -s -D "$tmp/head" -o /dev/null "http://127.0.0.1:$port/rooms" || fail "GET /rooms failed"
grep -qi '^X-Rooms-Total: 0' "$tmp/head" || fail "GET /rooms: no X-Rooms-Total: $(cat "$tmp/head")"

node "$npmdir/chat-clients.mjs" order "$base" 200 5 || fail "200 ws clients"
node "$npmdir/chat-clients.mjs" big "$base" 70000 || fail "a 70,000-byte text"
node "$npmdir/chat-clients.mjs" refuse "$base" || fail "refusals"

# the page, with the default --max-text (131072)
if [ -x "$chromium" ]; then
    node "$npmdir/chat-browser.mjs" "http://127.0.0.1:$port/" "$b/tests/chat-browser.png" \
        "$chromium" 131072 || fail "the page in Chromium"
else
    skipped="the page in Chromium (no $chromium)"
fi

# ---- rooms across servers: three chat servers on one Redis ----
redis_part() {
    command -v redis-server >/dev/null || { skipped="${skipped:+$skipped; }--redis (no redis-server)"; return 0; }
    local rport rpid urls="" i line
    rport=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    redis_up() {
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
            --loglevel warning >"$tmp/redis.log" 2>&1 &
        rpid=$!
        rpids="$rpids $rpid"
        for _ in $(seq 200); do
            (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null && return 0
            sleep 0.05
        done
        fail "redis-server did not start: $(cat "$tmp/redis.log")"
    }
    redis_up
    for i in 1 2 3; do
        "$chat" --port 0 --redis "127.0.0.1:$rport" >"$tmp/out$i" 2>"$tmp/err$i" &
        rpids="$rpids $!"
        for _ in $(seq 100); do [ -s "$tmp/out$i" ] && break; sleep 0.05; done
        line=$(head -n 1 "$tmp/out$i")
        case "$line" in
        "listening on 127.0.0.1:"*) ;;
        *) grep -q hiredis "$tmp/err$i" &&
               { skipped="${skipped:+$skipped; }--redis (libsocknet without hiredis)"; return 0; }
           fail "chat --redis printed '$line': $(cat "$tmp/err$i")" ;;
        esac
        urls="$urls${urls:+,}ws://127.0.0.1:${line##*:}"
    done
    node "$npmdir/chat-clients.mjs" cluster "$urls" 60 5 || fail "60 clients on three servers"
    kill -9 "$rpid"
    wait "$rpid" 2>/dev/null
    node "$npmdir/chat-clients.mjs" down "${urls%%,*}" || fail "--redis with Redis down"
    redis_up
    node "$npmdir/chat-clients.mjs" restart "$urls" >"$tmp/restart" &
    local cpid=$!
    # Redis goes down again only once the members are in: the client first waits for each
    # server's reconnect (a backoff of up to 7.5 s, then up to 100 probes), so wait for its
    # "ready" as long as it lives (it bounds every wait of its own), 120 s at most
    for _ in $(seq 2400); do
        grep -q ready "$tmp/restart" && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.05
    done
    if ! grep -q ready "$tmp/restart"; then
        kill "$cpid" 2>/dev/null
        fail "members after a restart of Redis, before it went down again: $(cat "$tmp/restart")"
    fi
    kill -9 "$rpid"
    wait "$rpid" 2>/dev/null
    redis_up
    wait "$cpid" || fail "members after a restart of Redis: $(cat "$tmp/restart")"
    for p in $rpids; do kill -TERM "$p" 2>/dev/null; done
    for p in $rpids; do wait "$p" 2>/dev/null; done
    rpids=""
    redis_done="three servers on one Redis, its loss and restart, "
}
redis_part

# SIGTERM: close 1001 to the member, exit 0
node "$npmdir/chat-clients.mjs" shutdown "$base" >"$tmp/stop" &
cpid=$!
for _ in $(seq 100); do grep -q open "$tmp/stop" && break; sleep 0.05; done
stop_chat "(defaults)"
wait "$cpid" || fail "the member did not get close 1001: $(cat "$tmp/stop")"
if [ -n "${skipped:-}" ]; then
    echo "ok: chat page, 200 ws clients, long texts and --max-text, refusals, ${redis_done:-}close 1001 on SIGTERM"
    echo "SKIP: $skipped"
    exit 77
fi
echo "ok: chat page, 200 ws clients, long texts and --max-text, refusals, Chromium, ${redis_done:-}close 1001 on SIGTERM"
