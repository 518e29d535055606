#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# interop-tls.sh BUILDDIR: the library's TLS against real peers, data
# compared byte for byte:
#   - its server (examples/echo-server) against openssl s_client and
#     gnutls-cli, TLS 1.2 and 1.3, one-way and mutual;
#   - its client (examples/echo-client) against openssl s_server -rev (which
#     sends each line back reversed), one-way and mutual;
#   - TLS 1.3 key updates in the middle of a stream (s_client's K and k);
#   - refusals: a peer without a client certificate, a peer offering only
#     TLS 1.1, no ALPN protocol in common, an untrusted server; each with
#     the reason the example prints (the server logs it with the client's
#     address);
#   - OpenHarmony's settings (IANA signature algorithm names, one cipher
#     list for both versions, ALPN with ':', a key password) against
#     openssl s_client and gnutls-cli.
# Run by scripts/check.sh (stage interop). Needs openssl and gnutls-cli
# (scripts/setup.sh --check installs gnutls-bin).
set -uo pipefail
b=${1:?usage: interop-tls.sh BUILDDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
srv=$b/examples/echo-server
cli=$b/examples/echo-client
for tool in openssl gnutls-cli rev; do
    command -v $tool >/dev/null || { echo "interop: $tool not found"; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

sh "$top/tests/gen-pki.sh" "$tmp/pki" || fail "gen-pki.sh"
p=$tmp/pki
head -c 60000 /dev/urandom | base64 >"$tmp/in" # 80 KB of lines

# Each start removes the last one's output first: the new process truncates
# it only once it runs, and the old "listening" line must not be read.
start_lib_server() { # echo-server flags...: sets port
    rm -f "$tmp/srv.out"
    "$srv" --port 0 "$@" >"$tmp/srv.out" 2>"$tmp/srv.err" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$tmp/srv.out" ] && break; sleep 0.05; done
    port=$(sed -n 's/^listening on .*://p' "$tmp/srv.out")
    [ -n "$port" ] || fail "echo-server did not start: $(cat "$tmp/srv.err")"
}

stop_lib_server() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'; }

# The running echo-server logged a line matching the pattern (within 5 s).
logged() { # grep pattern
    for _ in $(seq 100); do grep -q "$1" "$tmp/srv.err" && return 0; sleep 0.05; done
    fail "echo-server did not log '$1': $(tail -n 3 "$tmp/srv.err")"
}

# The input, then a second for the echoes to come back; the peers exit at
# the end of their input (s_client: -no_ign_eof, after -quiet turned it on;
# -nocommands, or a line starting with K, R or Q is a command to it).
feed() { cat "$tmp/in"; sleep 1; }

s_client() { # extra flags...
    feed | timeout 20 openssl s_client -quiet -no_ign_eof -nocommands -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$p/ca.pem" -verify_return_error \
        -verify_hostname localhost "$@" >"$tmp/out" 2>"$tmp/err"
}

gnutls() { # extra flags...
    feed | timeout 20 gnutls-cli --x509cafile "$p/ca.pem" --logfile "$tmp/gnutls.log" \
        -p "$port" "$@" localhost >"$tmp/out" 2>"$tmp/err"
}

same() { cmp -s "$tmp/in" "$tmp/out" || fail "$1: data differs ($(wc -c <"$tmp/out") of $(wc -c <"$tmp/in") bytes back; $(tail -n 3 "$tmp/err"))"; }

# ---- the library's server -------------------------------------------------------
start_lib_server --tls-cert "$p/server-rsa.pem" --tls-key "$p/server-rsa.key"
for v in -tls1_2 -tls1_3; do
    s_client $v || fail "s_client $v: $(tail -n 3 "$tmp/err")"
    same "s_client $v"
    ok "server vs openssl s_client $v"
done
gnutls || fail "gnutls-cli: $(tail -n 3 "$tmp/err")"
same "gnutls-cli"
gnutls --priority "NORMAL:-VERS-ALL:+VERS-TLS1.2" || fail "gnutls-cli TLS 1.2"
same "gnutls-cli TLS 1.2"
ok "server vs gnutls-cli, TLS 1.3 and 1.2"
# TLS 1.3 key updates mid-stream (s_client's K: update and ask the peer to; k: update)
(printf 'one\n'; sleep 0.3; printf 'K\n'; sleep 0.3; printf 'two\n'; sleep 0.3; printf 'k\n'
    sleep 0.3; printf 'three\n'; sleep 0.5) | timeout 20 openssl s_client -quiet -no_ign_eof \
    -tls1_3 -connect "127.0.0.1:$port" -CAfile "$p/ca.pem" >"$tmp/out" 2>"$tmp/err"
[ "$(grep -v KEYUPDATE "$tmp/out" | tr '\n' ' ')" = "one two three " ] ||
    fail "key update: got '$(tr '\n' ' ' <"$tmp/out")'"
ok "server goes on through TLS 1.3 key updates"
echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -tls1_1 \
    -cipher DEFAULT@SECLEVEL=0 >"$tmp/out" 2>&1 && fail "s_client -tls1_1 was served"
logged "TLS handshake with 127.0.0.1:[0-9]* failed: no protocol version in common: this side allows TLS 1.2 and 1.3"
ok "server refuses openssl s_client -tls1_1, and logs why"
stop_lib_server

# OpenHarmony's two-way example: signature algorithms in IANA's and
# wolfSSL's spelling, one cipher list for both versions (with a suite
# Debian's wolfSSL has: it has no plain RSA key exchange), ALPN with ':'.
oh=(--tls-sigalgs "rsa_pss_rsae_sha256:ECDSA+SHA256"
    --tls-ciphers "ECDHE-RSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384")
start_lib_server --tls-cert "$p/server-rsa.pem" --tls-key "$p/server-enc.key" \
    --tls-key-password secret --tls-ca "$p/ca.pem" --tls-verify-peer --alpn "spdy/1:http/1.1" "${oh[@]}"
s_client -tls1_2 -cert "$p/client-rsa.pem" -key "$p/client-rsa.key" -alpn http/1.1 \
    -sigalgs "rsa_pss_rsae_sha256" || fail "OpenHarmony settings, s_client: $(tail -n 3 "$tmp/err")"
same "OpenHarmony settings, s_client"
gnutls --x509certfile "$p/client-ec.pem" --x509keyfile "$p/client-ec.key" --alpn spdy/1 ||
    fail "OpenHarmony settings, gnutls-cli: $(tail -n 3 "$tmp/err")"
same "OpenHarmony settings, gnutls-cli"
grep -q "Application protocol: spdy/1" "$tmp/gnutls.log" "$tmp/err" 2>/dev/null ||
    fail "gnutls-cli did not agree on spdy/1: $(grep -i alpn "$tmp/err" "$tmp/gnutls.log" | head -3)"
gnutls --x509certfile "$p/client-ec.pem" --x509keyfile "$p/client-ec.key" --alpn h2
[ -s "$tmp/out" ] && fail "gnutls-cli offering only h2 got data back"
logged "failed: no ALPN protocol in common; ours: spdy/1,http/1.1"
ok "OpenHarmony's settings vs openssl s_client and gnutls-cli; no ALPN in common logged"
stop_lib_server

start_lib_server --fibers off --tls-cert "$p/server-ec.pem" --tls-key "$p/server-ec.key" \
    --tls-ca "$p/ca.pem" --tls-verify-peer
s_client -cert "$p/client-rsa.pem" -key "$p/client-rsa.key" || fail "mutual s_client"
same "mutual s_client"
gnutls --x509certfile "$p/client-ec.pem" --x509keyfile "$p/client-ec.key" || fail "mutual gnutls-cli"
same "mutual gnutls-cli"
ok "mutual TLS: server vs openssl s_client and gnutls-cli"
s_client
[ -s "$tmp/out" ] && fail "s_client without a certificate got data back"
logged "TLS handshake with 127.0.0.1:[0-9]* failed: the peer sent no certificate"
gnutls
[ -s "$tmp/out" ] && fail "gnutls-cli without a certificate got data back"
s_client -cert "$p/client-ca2.pem" -key "$p/client-ca2.key"
[ -s "$tmp/out" ] && fail "s_client with a certificate from another CA got data back"
logged "failed: the peer's certificate: .*verify error"
ok "server refuses clients without a certificate or from another CA, and logs why"
stop_lib_server

# ---- the library's client ----------------------------------------------------------
start_s_server() { # flags...: sets port
    rm -f "$tmp/ss.out"
    openssl s_server -rev -accept 127.0.0.1:0 -naccept 1 "$@" >"$tmp/ss.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q '^ACCEPT' "$tmp/ss.out" && break; sleep 0.05; done
    port=$(sed -n 's/^ACCEPT .*://p' "$tmp/ss.out")
    [ -n "$port" ] || fail "s_server did not start: $(cat "$tmp/ss.out")"
}
rev "$tmp/in" >"$tmp/want"
for v in -tls1_2 -tls1_3; do
    start_s_server $v -cert "$p/server-rsa.pem" -key "$p/server-rsa.key"
    timeout 20 "$cli" localhost "$port" --tls --tls-ca "$p/ca.pem" <"$tmp/in" >"$tmp/out" \
        2>"$tmp/err" || fail "echo-client vs s_server $v: $(cat "$tmp/err")"
    cmp -s "$tmp/want" "$tmp/out" || fail "echo-client vs s_server $v: data differs"
    grep -q "^tls: TLSv1.${v#-tls1_} " "$tmp/err" || fail "echo-client reported $(cat "$tmp/err")"
    wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
    ok "client vs openssl s_server $v"
done
start_s_server -cert "$p/server-ec.pem" -key "$p/server-ec.key" -CAfile "$p/ca.pem" \
    -Verify 2 -verify_return_error
timeout 20 "$cli" localhost "$port" --tls --tls-ca "$p/ca.pem" --tls-cert "$p/client-ec.pem" \
    --tls-key "$p/client-ec.key" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" ||
    fail "mutual echo-client vs s_server: $(cat "$tmp/err")"
cmp -s "$tmp/want" "$tmp/out" || fail "mutual echo-client vs s_server: data differs"
wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
ok "mutual TLS: client vs openssl s_server"
start_s_server -cert "$p/server-ec.pem" -key "$p/server-ec.key" -CAfile "$p/ca.pem" \
    -Verify 2 -verify_return_error
timeout 20 "$cli" localhost "$port" --tls --tls-ca "$p/ca.pem" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &&
    fail "echo-client without a certificate was served by s_server -Verify"
kill "${pids[-1]}" 2>/dev/null; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
ok "client without a certificate refused by s_server -Verify"
start_s_server -cert "$p/server-rsa.pem" -key "$p/server-rsa.key" -tls1_1 -cipher DEFAULT@SECLEVEL=0
timeout 20 "$cli" localhost "$port" --tls --tls-ca "$p/ca.pem" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &&
    fail "echo-client spoke TLS 1.1"
grep -q "peer sent alert 70 (protocol_version)" "$tmp/err" || fail "echo-client vs TLS 1.1: $(cat "$tmp/err")"
kill "${pids[-1]}" 2>/dev/null; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
start_s_server -cert "$p/server-rsa.pem" -key "$p/server-rsa.key"
timeout 20 "$cli" localhost "$port" --tls --tls-ca "$p/ca2.pem" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &&
    fail "echo-client trusted a server of another CA"
grep -q "TLS certificate verification failed: the peer's certificate: .*verify error" "$tmp/err" ||
    fail "echo-client vs an untrusted server: $(cat "$tmp/err")"
kill "${pids[-1]}" 2>/dev/null; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
"$cli" localhost 1 --tls --tls-ciphers AES256-SHA256 </dev/null 2>"$tmp/err" && fail "echo-client took AES256-SHA256"
grep -q "ciphers: AES256-SHA256 (TLS_RSA_WITH_AES_256_CBC_SHA256) is not known to this wolfSSL build" "$tmp/err" ||
    fail "echo-client --tls-ciphers AES256-SHA256: $(cat "$tmp/err")"
ok "client says why: TLS 1.1 server, untrusted server, a suite this wolfSSL lacks"
echo "interop: all passed"
