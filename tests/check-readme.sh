#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every ```c block of README.md compiles, each as its own translation unit, with
# -std=c11 -pedantic -Wall -Wextra -Werror, so that no example can rot. The line right
# above each block says how it is compiled (an HTML comment, invisible on the page):
#   <!-- check-readme: program NAME -->        a whole program: compiled and linked as NAME
#   <!-- check-readme: top-level; DECLS -->    declarations and functions: compiled after
#                                              the includes below and DECLS
#   <!-- check-readme: statements; DECLS -->   statements: compiled as the body of a void
#                                              function, after the includes and DECLS
# A fragment gets <stdio.h>, <string.h> and <socknet.h>; DECLS (optional) declare what it
# uses without defining it (the connection c, a buffer, the user's own functions). A
# top-level fragment's static functions are referenced after it, so an unused one does
# not warn. A C block without such a line fails the test.
# Then: no example binds all interfaces (people copy examples), the program "echo" is
# about 25 lines, echoes and stops on SIGINT; "udp" prints "ping"; "tls" (with openssl)
# greets the client by its certificate's subject; "web" serves its page on 127.0.0.1:8080.
# A part the machine cannot run (no openssl, a port the examples use already taken)
# is reported, and the test ends as skipped (77) instead of passed.
set -u
src=${top_srcdir:-.}
b=${top_builddir:-.}
lib=$b/lib/.libs/libsocknet.so
[ -f "$lib" ] || { echo "no shared library"; exit 77; }
tmp=$(mktemp -d); pid=""; skipped=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
# -D_POSIX_C_SOURCE: the examples that wait for Ctrl-C use sigwait and pthread_sigmask,
# which strict -std=c11 hides without it (gcc's default -std=gnu17 shows them). The
# build's CFLAGS and LDFLAGS are added: a sanitizer build's library needs its runtime.
flags="-std=c11 -pedantic -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror"
compile() { # NAME: compiles $tmp/NAME.c to an object
    # shellcheck disable=SC2086
    ${CC:-cc} $flags ${SN_CFLAGS:-} -I"$src/include" -c "$tmp/$1.c" -o "$tmp/$1.o"
}
build() { # NAME: compiles and links $tmp/NAME.c
    # shellcheck disable=SC2086
    ${CC:-cc} $flags ${SN_CFLAGS:-} -I"$src/include" "$tmp/$1.c" -o "$tmp/$1" ${SN_LDFLAGS:-} \
        "$lib" -Wl,-rpath,"$(cd "$(dirname "$lib")" && pwd)" -lpthread
}

# Each C block to $tmp/NAME.c (programs) or $tmp/lLINE.c (fragments, wrapped), and a
# line "KIND NAME LINE" to $tmp/blocks.
awk -v tmp="$tmp" '
function fail(msg) { print "FAIL: README.md:" NR ": " msg; bad = 1 }
inblk && /^```[[:space:]]*$/ {
    if (kind == "statements") print "}" > file
    if (kind == "top-level")
        for (f in uses) print "void (*readme_use_" f ")(void) = (void (*)(void))" f ";" > file
    close(file); inblk = 0; next
}
inblk {
    if (kind == "top-level" && match($0, /^static [^=;]*[A-Za-z_][A-Za-z_0-9]*\(/)) {
        s = substr($0, 1, RLENGTH - 1); sub(/.*[^A-Za-z_0-9]/, "", s); uses[s] = 1
    }
    print > file; next
}
/^```c[[:space:]]*$/ {
    inblk = 1; kind = ""; split("", uses)
    if (markline != NR - 1) { fail("a C block without a <!-- check-readme: ... --> line above it"); file = "/dev/null"; next }
    m = mark; sub(/^<!-- check-readme:[[:space:]]*/, "", m); sub(/[[:space:]]*-->[[:space:]]*$/, "", m)
    decls = ""; i = index(m, ";")
    if (i) { decls = substr(m, i + 1); m = substr(m, 1, i - 1) }
    split(m, w, " "); kind = w[1]; name = "l" NR
    if (kind == "program") {
        name = w[2]
        if (name !~ /^[a-z][a-z0-9-]*$/ || seen[name]++) { fail("program needs a new name: \"" w[2] "\""); file = "/dev/null"; next }
    } else if (kind != "top-level" && kind != "statements") {
        fail("unknown kind \"" kind "\" (program NAME, top-level, statements)"); file = "/dev/null"; next
    }
    file = tmp "/" name ".c"
    if (kind != "program")
        print "#include <stdio.h>\n#include <string.h>\n#include <socknet.h>\n" decls > file
    if (kind == "statements") print "void readme_" name "(void);\nvoid readme_" name "(void)\n{" > file
    if (kind != "program") print "#line " NR + 1 " \"README.md\"" > file
    print kind, name, NR + 1 > (tmp "/blocks")
    next
}
/^<!-- check-readme:.*-->[[:space:]]*$/ { mark = $0; markline = NR; next }
END {
    if (inblk) { fail("the last C block is not closed") }
    exit bad
}' "$src/README.md" || exit 1
[ -s "$tmp/blocks" ] || { echo "FAIL: no C block in README.md"; exit 1; }

fail=0 nblocks=0
while read -r kind name line; do
    nblocks=$((nblocks + 1))
    if [ "$kind" = program ]; then
        build "$name" || { echo "FAIL: README.md:$line: the program \"$name\" does not build"; fail=1; }
    else
        compile "$name" || { echo "FAIL: README.md:$line: the $kind fragment does not compile"; fail=1; }
    fi
done <"$tmp/blocks"
[ $fail = 0 ] || exit 1
for p in echo udp tls web; do
    [ -x "$tmp/$p" ] || { echo "FAIL: README.md has no C block marked \"program $p\""; exit 1; }
done

# Servers in the examples listen on loopback: no all-interfaces address, and every server
# configuration names its host or its listeners.
if grep -nE '"(0\.0\.0\.0|::|\[::\])"|\.host = ""' "$tmp"/*.c; then
    echo "FAIL: a README example binds all interfaces (above)"; exit 1
fi
if grep -nE 'sn_(udp_)?server_config [a-z_]+ = \{' "$tmp"/*.c | grep -vE '\.(host|listeners) ='; then
    echo "FAIL: a README server configuration without .host or .listeners (above): it binds all interfaces"
    exit 1
fi

lines=$(grep -cv '^[[:space:]]*$' "$tmp/echo.c")
if [ "$lines" -lt 15 ] || [ "$lines" -gt 30 ]; then echo "FAIL: README echo server has $lines lines"; exit 1; fi
out=$(timeout 10 "$tmp/udp") || { echo "FAIL: the README's UDP example failed: $out"; exit 1; }
[ "$out" = ping ] || { echo "FAIL: the README's UDP example printed '$out'"; exit 1; }
# The TLS section's mutual-TLS example, with openssl at hand, runs against a fresh PKI and
# greets the client by its certificate's subject.
if command -v openssl >/dev/null; then
    sh "$src/tests/gen-pki.sh" "$tmp/pki" || { echo "FAIL: tests/gen-pki.sh"; exit 1; }
    (cd "$tmp/pki" && cp server-rsa.pem server.pem && cp server-rsa.key server.key &&
        cp client-ec.pem client.pem && cp client-ec.key client.key)
    out=$(cd "$tmp/pki" && timeout 20 "$tmp/tls") || { echo "FAIL: README TLS example: $out"; exit 1; }
    case "$out" in *"hello "*"CN=client-ec"*) ;; *) echo "FAIL: README TLS example printed '$out'"; exit 1 ;; esac
    tls="runs"
else
    tls="not run (no openssl)"
    skipped="$skipped tls (no openssl)"
fi

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() { # PROGRAM PORT: runs it and waits until the port answers
    "$tmp/$1" & pid=$!
    for _ in $(seq 100); do busy "$2" && return 0; sleep 0.05; done
    echo "FAIL: README $1 example does not listen on 127.0.0.1:$2"; exit 1
}
stop() { # PROGRAM: SIGINT, and it exits 0
    kill -INT "$pid"; wait "$pid"; local rc=$?; pid=""
    [ $rc = 0 ] || { echo "FAIL: README $1 example exited $rc on SIGINT"; exit 1; }
}
ran=""
if busy 7000; then
    echo "port 7000 busy: the echo server is not run"
    skipped="$skipped echo (port 7000 busy)"
else
    start echo 7000
    exec 3<>/dev/tcp/127.0.0.1/7000
    printf 'readme\n' >&3
    reply=""; read -r -t 5 reply <&3
    exec 3>&-
    [ "$reply" = readme ] || { echo "FAIL: README echo server replied '$reply'"; exit 1; }
    stop echo
    ran="$ran echo"
fi
if busy 8080; then
    echo "port 8080 busy: the WebSocket echo server is not run"
    skipped="$skipped web (port 8080 busy)"
else
    start web 8080
    exec 3<>/dev/tcp/127.0.0.1/8080
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    reply=$(timeout 5 cat <&3)
    exec 3>&-
    case "$reply" in "HTTP/1.1 200"*"try ws://"*) ;; *) echo "FAIL: README web example answered '$reply'"; exit 1 ;; esac
    stop web
    ran="$ran web"
fi
echo "ok: $nblocks C blocks of README.md compile; udp prints ping; tls $tls;" \
    "echo server has $lines lines; ran:${ran:- none}"
if [ -n "$skipped" ]; then
    echo "SKIP: not run:$skipped"
    exit 77
fi
