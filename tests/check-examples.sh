#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The examples' command-line contract: echo-server prints exactly one line
# "listening on H:PORT", echoes bytes, and exits 0 on SIGINT and SIGTERM;
# echo-client prints each reply; udp-echo does the same for datagrams
# (driven by a small python3 client over 127.0.0.1 and ::1); a bad flag or
# value is refused by name, with its range or values, and exit status 2.
set -u
b=${top_builddir:-.}
srv=$b/examples/echo-server
cli=$b/examples/echo-client
udp=$b/examples/udp-echo
[ -x "$srv" ] && [ -x "$cli" ] || { echo "examples not built"; exit 77; }
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

start_server() { # args...
    start_prog "$srv" "$@"
}

start_prog() { # PROGRAM args...
    local prog=$1
    shift
    rm -f "$tmp/out" # the new process truncates it only once it runs
    "$prog" "$@" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for _ in $(seq 400); do # up to 20 s: libtool may relink on a first run
        [ -s "$tmp/out" ] && break
        sleep 0.05
    done
    line=$(head -n 1 "$tmp/out")
    case "$line" in
    "listening on "*:*) ;;
    *) fail "$(basename "$prog") printed '$line' (stderr: $(cat "$tmp/err"))" ;;
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
    [ $rc = 0 ] || fail "server exited $rc after SIG$1"
    [ "$(wc -l <"$tmp/out")" = 1 ] || fail "server printed more than one line"
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

# 2b. a local socket: the same echo, "listening on unix:PATH", the file removed
# on exit, and a stale file left by a crash (SIGKILL) reclaimed at start
sock=$tmp/echo.sock
start_server --unix "$sock" --workers 4
[ "$line" = "listening on unix:$sock" ] || fail "--unix printed '$line'"
[ -S "$sock" ] || fail "no socket at $sock"
printf 'over a local socket\n\nbye\n' >"$tmp/in"
"$cli" "unix:$sock" <"$tmp/in" >"$tmp/got" || fail "echo-client over unix:"
cmp -s "$tmp/in" "$tmp/got" || fail "local echo differs"
stop_server TERM
[ -e "$sock" ] && fail "$sock left behind after SIGTERM"
start_server --unix "$sock" --fibers off
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=""
[ -S "$sock" ] || fail "no stale file after SIGKILL"
start_server --unix "$sock"
"$cli" "unix:$sock" <"$tmp/in" >"$tmp/got" || fail "echo-client after a stale file"
cmp -s "$tmp/in" "$tmp/got" || fail "local echo differs after a stale file"
stop_server INT
: >"$tmp/plain"
"$srv" --unix "$tmp/plain" >/dev/null 2>&1 && fail "--unix on a plain file accepted"
[ -f "$tmp/plain" ] || fail "--unix removed a plain file"
"$srv" --unix "$sock" --port 0 >/dev/null 2>&1 && fail "--unix with --port accepted"

# 2c. admission: with one worker held by a client, a queued connection is
# answered per --overload once it has waited --queue-timeout, while the
# worker is still busy; with --queue 0 at once (both modes)
for mode in on off; do
    start_server --port 0 --fibers $mode --workers 1 --queue 1 --queue-timeout 300 \
        --overload 'message:busy, try later'
    exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
    printf 'first\n' >&3
    read -r -t 5 reply <&3 && [ "$reply" = first ] || fail "no echo before the queue test"
    exec 4<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect a second time"
    read -r -t 5 reply <&4 || fail "--fibers $mode: no answer to a queued connection"
    [ "$reply" = $'busy, try later\r' ] || fail "--fibers $mode: a queued connection got '$reply'"
    read -r -t 5 reply <&4 && fail "--fibers $mode: more after the overload answer"
    printf 'again\n' >&3
    read -r -t 5 reply <&3 && [ "$reply" = again ] || fail "the served client lost its worker"
    exec 3>&- 4>&-
    stop_server TERM
done
start_server --port 0 --workers 1 --queue 0 --overload message
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect"
printf 'first\n' >&3
read -r -t 5 reply <&3 && [ "$reply" = first ] || fail "no echo before --queue 0"
exec 4<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect a second time"
read -r -t 5 reply <&4 || fail "--queue 0: no answer"
[ "$reply" = $'server busy\r' ] || fail "--queue 0: got '$reply'"
exec 3>&- 4>&-
stop_server INT

# 2d. the event model: echo-server --events in both modes (the long line
# and many short ones through echo-client, SIGTERM with a client idle), and
# tcp-client-events (OpenHarmony's client: bind, connect with a timeout,
# the lines of stdin, close from the main thread; a refused connect says so)
evc=$b/examples/tcp-client-events
for mode in on off; do
    start_server --port 0 --events --fibers $mode --workers 2
    "$cli" 127.0.0.1 "$port" <"$tmp/long" >"$tmp/got" || fail "--events echo-client failed"
    cmp -s "$tmp/long" "$tmp/got" || fail "--events (fibers $mode) echo differs"
    seq 1 2000 >"$tmp/lines"
    "$evc" 127.0.0.1 "$port" --bind 127.0.0.1 --timeout 5000 <"$tmp/lines" >"$tmp/got" \
        2>"$tmp/cerr" || fail "tcp-client-events failed: $(cat "$tmp/cerr")"
    cmp -s "$tmp/lines" "$tmp/got" || fail "tcp-client-events (fibers $mode) got other bytes"
    grep -q "^connected to 127.0.0.1:$port\$" "$tmp/cerr" || fail "tcp-client-events: $(cat "$tmp/cerr")"
    grep -q '^closed: by this client$' "$tmp/cerr" || fail "tcp-client-events: $(cat "$tmp/cerr")"
    exec 3<>"/dev/tcp/127.0.0.1/$port" # idle while the server stops
    stop_server TERM
    exec 3<&-
done
rc=0
"$evc" 127.0.0.1 1 </dev/null >/dev/null 2>"$tmp/cerr" || rc=$?
[ $rc = 1 ] || fail "tcp-client-events to a closed port exited $rc"
grep -q "^tcp-client-events: connect 127.0.0.1:[0-9]*: connection refused$" "$tmp/cerr" ||
    fail "tcp-client-events to a closed port said '$(cat "$tmp/cerr")'"

# 3. a bad flag or value is refused by name: the first line on stderr says
# which and what it takes (its range or values), the usage line follows, and
# the exit status is 2
refused() { # 'WHAT IT SAYS' PROGRAM args...
    local want=$1 prog=$2 rc=0
    shift 2
    "$prog" "$@" </dev/null >/dev/null 2>"$tmp/bad" || rc=$?
    local what
    what="$(basename "$prog") $*"
    [ $rc = 2 ] || fail "$what: exit status $rc, not 2"
    [ "$(head -n 1 "$tmp/bad")" = "$want" ] ||
        fail "$what: said '$(head -n 1 "$tmp/bad")', not '$want'"
    sed -n 2p "$tmp/bad" | grep -q '^usage: ' || fail "$what: no usage line after the complaint"
}
ex=$b/examples
refused "echo-server: --port 70000: out of range (0-65535)" "$srv" --port 70000
refused "echo-server: unknown flag --bogus" "$srv" --bogus
refused "echo-server: --port needs a value" "$srv" --port
long=/tmp/$(printf 'p%.0s' $(seq 1 120))
refused "echo-server: --unix $long: too long (at most 107 bytes)" "$srv" --unix "$long"
refused "echo-server: --workers 0: out of range (1-1048576)" "$srv" --workers 0
refused "echo-server: --workers 70000: out of range with --fibers off (1-65536)" \
    "$srv" --workers 70000 --fibers off
refused "echo-server: --fibers maybe: expected on or off" "$srv" --fibers maybe
refused "echo-server: --stack-kib many: not a number (16-65536)" "$srv" --stack-kib many
refused "echo-server: --queue -1: out of range (0-16777216)" "$srv" --queue -1
refused "echo-server: --queue-timeout 0: out of range (1-86400000, or never)" "$srv" \
    --queue-timeout 0
refused "echo-server: --queue-timeout soon: not a number (1-86400000, or never)" "$srv" \
    --queue-timeout soon
refused "echo-server: --overload drop: expected close, reset, message or message:TEXT" "$srv" \
    --overload drop
refused "echo-server: --unix does not go with --host or --port" "$srv" --unix "$tmp/x" --port 0
refused "echo-server: --tls-cert and --tls-key go together" "$srv" --tls-cert cert.pem
refused "echo-server: --tls-verify-peer needs --tls-ca" "$srv" --tls-cert c.pem --tls-key k.pem \
    --tls-verify-peer
refused "echo-client: HOST 127.0.0.1 needs a PORT after it" "$cli" 127.0.0.1
refused "echo-client: PORT 70000: out of range (1-65535)" "$cli" 127.0.0.1 70000
refused "echo-client: --sni needs a value" "$cli" 127.0.0.1 1 --tls --sni
refused "echo-client: --alpn needs --tls" "$cli" 127.0.0.1 1 --alpn h2
refused "echo-client: unknown flag --frobnicate" "$cli" 127.0.0.1 1 --tls --frobnicate
refused "tcp-client-events: needs HOST PORT first, then the flags" "$evc" 127.0.0.1
refused "tcp-client-events: --timeout 0: out of range (1-3600000)" "$evc" 127.0.0.1 1 --timeout 0
refused "tcp-client-events: --bind port 70000: out of range (0-65535)" "$evc" 127.0.0.1 1 \
    --bind 127.0.0.1:70000
refused "tcp-client-events: --sni needs --tls" "$evc" 127.0.0.1 1 --sni x
refused "udp-echo: --workers 0: out of range (1-1048576)" "$udp" --workers 0
refused "udp-echo: --workers 2000000: out of range (1-1048576)" "$udp" --workers 2000000
refused "udp-echo: --port 65536: out of range (0-65535)" "$udp" --port 65536
refused "udp-echo: --batch 65: out of range (1-64)" "$udp" --batch 65
refused "udp-echo: unknown flag --frobnicate" "$udp" --frobnicate
refused "ws-echo: unknown flag --frobnicate" "$ex/ws-echo" --frobnicate
refused "ws-echo: --workers 2000000: out of range (1-1048576)" "$ex/ws-echo" --workers 2000000
refused "ws-echo: --deflate-level 10: out of range (1-9)" "$ex/ws-echo" --deflate-level 10
refused "ws-echo: --max-message 0: out of range (1-1073741824)" "$ex/ws-echo" --max-message 0
refused "ws-echo: --fibers maybe: expected on or off" "$ex/ws-echo" --fibers maybe
refused "ws-echo: --ping -1: out of range (0-3600000)" "$ex/ws-echo" --ping -1
refused "ws-echo: --ping-timeout 0: out of range (1-3600000)" "$ex/ws-echo" --ping-timeout 0
refused "ws-echo: --max-buffered 0: out of range (1-1099511627776)" "$ex/ws-echo" --max-buffered 0
refused "ws-client: --timeout-ms 0: out of range (1-3600000)" "$ex/ws-client" --timeout-ms 0 \
    ws://127.0.0.1:1/
refused "ws-client: --tls-ca needs a value" "$ex/ws-client" ws://127.0.0.1:1/ --tls-ca
refused "ws-client: unknown flag --frobnicate" "$ex/ws-client" --frobnicate ws://127.0.0.1:1/
refused "chat: --fibers maybe: expected on or off" "$ex/chat" --fibers maybe
refused "chat: --presence maybe: expected on or off" "$ex/chat" --presence maybe
refused "chat: --workers 2000000: out of range (1-1048576)" "$ex/chat" --workers 2000000
refused "chat: --workers 70000: out of range with --fibers off (1-65536)" "$ex/chat" \
    --fibers off --workers 70000
refused "chat: --policy fast: expected drop-oldest, drop-newest, disconnect or wait" \
    "$ex/chat" --policy fast
refused "chat: --max-queue none: not a number (1-16777216)" "$ex/chat" --max-queue none
refused "chat: --max-text 0: out of range (1-16777216)" "$ex/chat" --max-text 0
refused "chat: unknown flag --frobnicate" "$ex/chat" --frobnicate

# 4. udp-echo: datagrams of 0, 1, 1,400 and 65,507 bytes come back unchanged
[ -x "$udp" ] || fail "udp-echo not built"
udp_client() { # HOST PORT: sends each size, checks each echo byte for byte
    if ! command -v python3 >/dev/null; then
        echo "note: no python3: udp-echo started and stopped, no datagrams sent" >&2
        echo ok
        return
    fi
    python3 - "$1" "$2" <<'PY'
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((host, port))
for size in (0, 1, 1400, 65507, 0):
    data = os.urandom(size)
    for attempt in range(3):  # loopback does not lose datagrams; just in case
        s.send(data)
        try:
            got = s.recv(65536)
            break
        except socket.timeout:
            got = None
    if got != data:
        sys.exit("udp-echo: %d-byte datagram came back as %r" % (size, None if got is None else len(got)))
print("ok")
PY
}
start_prog "$udp" --port 0 --workers 3
[ "$hostpart" = "127.0.0.1" ] || fail "udp-echo default host is $hostpart"
[ "$(udp_client 127.0.0.1 "$port")" = ok ] || fail "udp-echo over IPv4"
stop_server TERM
start_prog "$udp" --host ::1 --port 0 --workers 1
[ "$hostpart" = "[::1]" ] || fail "udp-echo IPv6 host printed as $hostpart"
[ "$(udp_client ::1 "$port")" = ok ] || fail "udp-echo over IPv6"
stop_server INT
# the servers' --workers range is accepted; above 1024 threads on one socket
# udp-echo warns and runs 1024
start_prog "$udp" --port 0 --workers 2048
[ "$(cat "$tmp/err")" = "udp-echo: --workers 2048: capped at 1024 (threads receiving from one socket)" ] ||
    fail "udp-echo --workers 2048 said '$(cat "$tmp/err")'"
[ "$(udp_client 127.0.0.1 "$port")" = ok ] || fail "udp-echo with 1024 workers"
stop_server TERM
# 4b. ws-echo at /echo, lines through ws-client (text both ways, deflate),
# 404 elsewhere, SIGINT then a clean exit; the same with --events in both modes
for events in "" "--events --fibers on" "--events --fibers off"; do
    # shellcheck disable=SC2086 # the flags split on purpose
    start_prog "$b/examples/ws-echo" --port 0 $events
    "$b/examples/ws-client" "ws://127.0.0.1:$port/echo" <"$tmp/in" >"$tmp/got" ||
        fail "ws-client failed ($events)"
    cmp -s "$tmp/in" "$tmp/got" || fail "ws echo differs ($events)"
    "$b/examples/ws-client" --deflate "ws://127.0.0.1:$port/echo" <"$tmp/long" >"$tmp/got" ||
        fail "ws-client --deflate failed ($events)"
    cmp -s "$tmp/long" "$tmp/got" || fail "ws echo with deflate differs ($events)"
    "$b/examples/ws-client" "ws://127.0.0.1:$port/other" </dev/null 2>"$tmp/cerr" >/dev/null &&
        fail "ws-client reached /other ($events)"
    grep -q 'status 404' "$tmp/cerr" || fail "/other ($events): $(cat "$tmp/cerr")"
    stop_server INT
done
# 5. TLS: echo-server with a certificate, echo-client with --tls; mutual TLS
# with --tls-verify-peer; the negotiated protocol and cipher on stderr
if command -v openssl >/dev/null; then
    sh "${top_srcdir:-.}/tests/gen-pki.sh" "$tmp/pki" || fail "gen-pki.sh"
    p=$tmp/pki
    start_server --port 0 --tls-cert "$p/server-rsa.pem" --tls-key "$p/server-rsa.key"
    "$cli" 127.0.0.1 "$port" --tls --tls-ca "$p/ca.pem" --sni localhost <"$tmp/in" >"$tmp/got" \
        2>"$tmp/cerr" || fail "TLS echo-client failed: $(cat "$tmp/cerr")"
    cmp -s "$tmp/in" "$tmp/got" || fail "TLS echo differs"
    grep -q '^tls: TLSv1.3 TLS_' "$tmp/cerr" || fail "echo-client printed '$(cat "$tmp/cerr")'"
    "$cli" 127.0.0.1 "$port" --tls --tls-ca "$p/ca2.pem" --sni localhost </dev/null \
        >/dev/null 2>&1 && fail "an untrusted server was accepted"
    stop_server TERM
    # the event model over TLS: echo-server --events, tcp-client-events --tls
    start_server --port 0 --events --tls-cert "$p/server-rsa.pem" --tls-key "$p/server-rsa.key"
    "$evc" 127.0.0.1 "$port" --tls --tls-ca "$p/ca.pem" --sni localhost <"$tmp/in" \
        >"$tmp/got" 2>"$tmp/cerr" || fail "TLS tcp-client-events failed: $(cat "$tmp/cerr")"
    cmp -s "$tmp/in" "$tmp/got" || fail "TLS event echo differs"
    rc=0
    "$evc" 127.0.0.1 "$port" --tls --tls-ca "$p/ca2.pem" --sni localhost </dev/null \
        >/dev/null 2>"$tmp/cerr" || rc=$?
    [ $rc = 1 ] && grep -q "verify" "$tmp/cerr" ||
        fail "tcp-client-events trusting another CA: exit $rc, '$(cat "$tmp/cerr")'"
    stop_server TERM
    start_server --port 0 --fibers off --tls-cert "$p/server-ec.pem" --tls-key "$p/server-ec.key" \
        --tls-ca "$p/ca.pem" --tls-verify-peer
    "$cli" localhost "$port" --tls --tls-ca "$p/ca.pem" --tls-cert "$p/client-rsa.pem" \
        --tls-key "$p/client-rsa.key" <"$tmp/long" >"$tmp/got" 2>"$tmp/cerr" ||
        fail "mutual TLS echo-client failed: $(cat "$tmp/cerr")"
    cmp -s "$tmp/long" "$tmp/got" || fail "mutual TLS echo differs"
    "$cli" localhost "$port" --tls --tls-ca "$p/ca.pem" <"$tmp/in" >/dev/null 2>&1 &&
        fail "a client without a certificate was served"
    stop_server INT
    # wss: ws-echo with a certificate, ws-client trusting the test CA
    start_prog "$b/examples/ws-echo" --port 0 --tls-cert "$p/server-rsa.pem" \
        --tls-key "$p/server-rsa.key"
    "$b/examples/ws-client" --deflate --tls-ca "$p/ca.pem" "wss://localhost:$port/echo" \
        <"$tmp/long" >"$tmp/got" 2>"$tmp/cerr" || fail "wss ws-client failed: $(cat "$tmp/cerr")"
    cmp -s "$tmp/long" "$tmp/got" || fail "wss echo differs"
    "$b/examples/ws-client" "wss://localhost:$port/echo" </dev/null >/dev/null 2>&1 &&
        fail "ws-client trusted the test CA without --tls-ca"
    stop_server TERM
    # the chat over wss: a member's message comes back to it from the room
    start_prog "$b/examples/chat" --port 0 --tls-cert "$p/server-rsa.pem" \
        --tls-key "$p/server-rsa.key"
    echo 'over tls' | "$b/examples/ws-client" --tls-ca "$p/ca.pem" \
        "wss://localhost:$port/chat/lobby?name=ann" >"$tmp/got" 2>"$tmp/cerr" ||
        fail "wss chat: $(cat "$tmp/cerr")"
    grep -q '"from":"ann","text":"over tls"' "$tmp/got" || fail "wss chat got '$(cat "$tmp/got")'"
    stop_server TERM
else
    echo "note: no openssl: the TLS examples were not run" >&2
fi
echo "ok: examples keep their contract"
