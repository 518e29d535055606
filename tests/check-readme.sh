#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's echo server compiles as shown, is about 25 lines, and echoes; the README's UDP
# example (the first C block of its UDP section) compiles as shown and prints "ping"; the
# TLS section's mutual-TLS example compiles and, with openssl, runs; the WebSocket echo server
# of its routes section compiles.
set -u
src=${top_srcdir:-.}
b=${top_builddir:-.}
lib=$b/lib/.libs/libsocknet.so
[ -f "$lib" ] || { echo "no shared library"; exit 77; }
tmp=$(mktemp -d); pid=""
build() { # NAME: compiles $tmp/NAME.c as the README shows it, with the build's flags
    # (a sanitizer build's library needs its runtime)
    # shellcheck disable=SC2086
    ${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror ${SN_CFLAGS:-} \
        -I"$src/include" "$tmp/$1.c" -o "$tmp/$1" ${SN_LDFLAGS:-} "$lib" \
        -Wl,-rpath,"$(cd "$(dirname "$lib")" && pwd)" -lpthread
}
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
awk '/^## An echo server/ {on=1} on && /^```c$/ {grab=1; next} grab && /^```$/ {exit} grab {print}' \
    "$src/README.md" >"$tmp/echo.c"
lines=$(grep -cv '^[[:space:]]*$' "$tmp/echo.c")
[ "$lines" -ge 15 ] && [ "$lines" -le 30 ] || { echo "FAIL: README echo server has $lines lines"; exit 1; }
build echo || { echo "FAIL: the README's echo server does not compile"; exit 1; }
awk '/^### UDP sockets/ {on=1} on && /^```c$/ {grab=1; next} grab && /^```$/ {exit} grab {print}' \
    "$src/README.md" >"$tmp/udp.c"
[ -s "$tmp/udp.c" ] || { echo "FAIL: no C example in the README's UDP section"; exit 1; }
build udp || { echo "FAIL: the README's UDP example does not compile"; exit 1; }
out=$(timeout 10 "$tmp/udp") || { echo "FAIL: the README's UDP example failed: $out"; exit 1; }
[ "$out" = ping ] || { echo "FAIL: the README's UDP example printed '$out'"; exit 1; }
awk '/^### Routes: WebSocket/ {on=1} on && /^```c$/ {grab=1; next} grab && /^```$/ {exit} grab {print}' \
    "$src/README.md" >"$tmp/web.c"
[ -s "$tmp/web.c" ] || { echo "FAIL: no C example in the README's routes section"; exit 1; }
build web || { echo "FAIL: the README's WebSocket echo server does not compile"; exit 1; }
# The TLS section's mutual-TLS example compiles, and with openssl at hand runs
# against a fresh PKI and greets the client by its certificate's subject.
awk '/^### TLS/ {on=1} on && /^```c$/ {grab=1; next} grab && /^```$/ {exit} grab {print}' \
    "$src/README.md" >"$tmp/tls.c"
[ -s "$tmp/tls.c" ] || { echo "FAIL: no C example in the README's TLS section"; exit 1; }
build tls || { echo "FAIL: the README's TLS example does not compile"; exit 1; }
if command -v openssl >/dev/null && sh "$src/tests/gen-pki.sh" "$tmp/pki"; then
    (cd "$tmp/pki" && cp server-rsa.pem server.pem && cp server-rsa.key server.key &&
        cp client-ec.pem client.pem && cp client-ec.key client.key)
    out=$(cd "$tmp/pki" && timeout 20 "$tmp/tls") || { echo "FAIL: README TLS example: $out"; exit 1; }
    case "$out" in *"hello "*"CN=client-ec"*) ;; *) echo "FAIL: README TLS example printed '$out'"; exit 1 ;; esac
fi
# It listens on 127.0.0.1:7000: only run it if that port is free.
if (exec 3<>/dev/tcp/127.0.0.1/7000) 2>/dev/null; then
    echo "ok: README UDP example runs; echo server compiles ($lines lines); port 7000 busy, not run"
    exit 0
fi
"$tmp/echo" & pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/7000) 2>/dev/null && break; sleep 0.05; done
exec 3<>/dev/tcp/127.0.0.1/7000 || { echo "FAIL: README echo server does not listen"; exit 1; }
printf 'readme\n' >&3
read -r -t 5 reply <&3
[ "$reply" = readme ] || { echo "FAIL: README echo server replied '$reply'"; exit 1; }
exec 3>&-
kill -INT $pid; wait $pid; rc=$?; pid=""
[ $rc = 0 ] || { echo "FAIL: README echo server exited $rc on SIGINT"; exit 1; }
echo "ok: README UDP example runs; echo server compiles ($lines lines), echoes and stops on SIGINT"
