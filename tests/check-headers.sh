#!/bin/sh
# SPDX-License-Identifier: MIT
# Each public header compiles on its own (included twice: its guard), as C11
# and as C++11 (its extern "C" block), warning-free under -pedantic. Without
# a C++ compiler (CXX, else c++ or g++: Debian's build-essential) the C++
# half cannot run: the test then reports a skip (77) after the C half passes.
src=${top_srcdir:-.}
cc=${CC:-cc}
cxx=${CXX:-}
[ -n "$cxx" ] || cxx=$(command -v c++ || command -v g++)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for h in "$src"/include/socknet.h "$src"/include/socknet/*.h; do
    name=${h#"$src"/include/}
    printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$name" "$name" > "$tmp/t.c"
    if ! $cc -std=c11 -Wall -Wextra -Werror -pedantic -I"$src/include" -c "$tmp/t.c" -o "$tmp/t.o"; then
        echo "FAIL: $name does not compile on its own as C11"; fail=1
    fi
    [ -n "$cxx" ] || continue
    if ! $cxx -x c++ -std=c++11 -Wall -Wextra -Werror -pedantic -I"$src/include" \
        -c "$tmp/t.c" -o "$tmp/t.o"; then
        echo "FAIL: $name does not compile on its own as C++11"; fail=1
    fi
done
[ $fail = 0 ] || exit 1
if [ -z "$cxx" ]; then
    echo "ok: every header compiles on its own as C11; SKIP: no C++ compiler (CXX, c++, g++)"
    exit 77
fi
echo "ok: every header compiles on its own as C11 and as C++11 ($cxx)"
