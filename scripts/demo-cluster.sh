#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo-cluster.sh: rooms across servers. Sets everything up, starts a
# redis-server on loopback and three chat servers on it (examples/chat
# --redis), and prints their three URLs: open each in a browser, pick a
# name and the same room, and chat across the servers. Ctrl-C stops them
# all (every member gets close 1001).
#   REDIS_PORT=6390 PORT=8081 scripts/demo-cluster.sh
# The chat servers listen on PORT, PORT+1 and PORT+2 (default 8081-8083),
# Redis on REDIS_PORT (default 6390), all on 127.0.0.1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" "$top/build"
if ! command -v redis-server >/dev/null; then
    echo "demo-cluster: installing redis-server" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        redis-server >/dev/null
fi

redis_port=${REDIS_PORT:-6390}
port=${PORT:-8081}
dir=$(mktemp -d)
pids=()
stop() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap stop INT TERM EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --loglevel warning >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null ||
    { echo "demo-cluster: redis-server did not start on port $redis_port:" >&2
      cat "$dir/redis.log" >&2; exit 1; }

urls=()
for i in 0 1 2; do
    p=$((port + i))
    "$top/build/examples/chat" --host 127.0.0.1 --port "$p" --redis "127.0.0.1:$redis_port" \
        >"$dir/chat$i.out" 2>"$dir/chat$i.err" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$dir/chat$i.out" ] && break; sleep 0.05; done
    grep -q "^listening on" "$dir/chat$i.out" ||
        { echo "demo-cluster: the chat server on port $p did not start:" >&2
          cat "$dir/chat$i.err" >&2; exit 1; }
    urls+=("http://127.0.0.1:$p/")
done
echo "demo-cluster: three chat servers on one Redis (127.0.0.1:$redis_port); open"
for u in "${urls[@]}"; do echo "      $u"; done
echo "      in a browser, the same room on each, to chat across them (Ctrl-C here stops them)"
wait -n "${pids[@]}" || true
echo "demo-cluster: a server or Redis ended; stopping the others" >&2
