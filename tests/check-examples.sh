#!/usr/bin/env bash
# The examples' command-line contract: echo-server prints exactly one line
# "listening on H:PORT", echoes bytes, and exits 0 on SIGINT and SIGTERM;
# echo-client prints each reply.
set -u
b=${top_builddir:-.}
srv=$b/examples/echo-server
cli=$b/examples/echo-client
[ -x "$srv" ] && [ -x "$cli" ] || { echo "examples not built"; exit 77; }
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

start_server() { # args...
    "$srv" "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 100); do
        [ -s "$tmp/out" ] && break
        sleep 0.05
    done
    line=$(head -n 1 "$tmp/out")
    case "$line" in
    "listening on "*:*) ;;
    *) fail "echo-server printed '$line' (stderr: $(cat "$tmp/err"))" ;;
    esac
    port=${line##*:}
    hostpart=${line#listening on }
    hostpart=${hostpart%:*}
}

stop_server() { # SIGNAL
    kill -"$1" "$pid"
    local rc=0
    wait "$pid" || rc=$?
    pid=""
    [ $rc = 0 ] || fail "echo-server exited $rc after SIG$1"
    [ "$(wc -l <"$tmp/out")" = 1 ] || fail "echo-server printed more than one line"
}

# 1. default host, port 0, lines through echo-client, SIGTERM
start_server --port 0 --workers 4
[ "$hostpart" = "127.0.0.1" ] || fail "default host is $hostpart"
printf 'hello\nsecond line\n\nlast\n' >"$tmp/in"
"$cli" 127.0.0.1 "$port" <"$tmp/in" >"$tmp/got" || fail "echo-client failed"
cmp -s "$tmp/in" "$tmp/got" || fail "echo-client output differs"
# a long line (200 KiB) and binary-ish bytes
head -c 150000 /dev/urandom | base64 -w 0 >"$tmp/long"; echo >>"$tmp/long"
"$cli" 127.0.0.1 "$port" <"$tmp/long" >"$tmp/got" || fail "echo-client long line"
cmp -s "$tmp/long" "$tmp/got" || fail "long line differs"
stop_server TERM

# 2. IPv6 host, SIGINT while a client is connected and idle
start_server --host ::1 --port 0
[ "$hostpart" = "[::1]" ] || fail "IPv6 host printed as $hostpart"
exec 3<>"/dev/tcp/::1/$port" || fail "cannot connect over IPv6"
printf 'ping\n' >&3
read -r -t 5 reply <&3 || fail "no echo over IPv6"
[ "$reply" = ping ] || fail "IPv6 echo was '$reply'"
stop_server INT
exec 3>&-

# 3. bad flags are refused
"$srv" --port 70000 >/dev/null 2>&1 && fail "--port 70000 accepted"
"$srv" --bogus >/dev/null 2>&1 && fail "--bogus accepted"
"$cli" 127.0.0.1 >/dev/null 2>&1 && fail "echo-client without a port accepted"
echo "ok: examples keep their contract"
