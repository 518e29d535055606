#!/bin/sh
# SPDX-License-Identifier: MIT
# The manual pages (made from the headers by `make`, see Makefile.am):
#  - every public function, exported by the shared library or declared SN_API
#    in a header, has a page, sn_read_line(3), that is or sources a page
#    documenting it (a heading of its own);
#  - every header has its module page, socknet_chan(3), and the overview,
#    socknet(3), names each of them;
#  - every page renders with no groff warning: `groff -man -ww -z` (all
#    warnings) and `man --warnings=w -l` (as man-db runs groff, with
#    preconv and .so), both at 80 columns, must print nothing;
#  - man/pages.list names exactly the pages there are.
src=${top_srcdir:-.}
b=${top_builddir:-.}
d=$b/man
[ -f "$d/pages.list" ] || d=$src/man
[ -f "$d/pages.list" ] || { echo "FAIL: no man/pages.list (make makes the pages)"; exit 1; }
for tool in groff man; do
    command -v $tool >/dev/null || { echo "no $tool: skipped (Debian: apt-get install man-db)"; exit 77; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# The list and the directory agree.
(cd "$d/man3" && LC_ALL=C ls) >"$tmp/have"
LC_ALL=C sort "$d/pages.list" | cmp -s - "$tmp/have" ||
    bad "man/pages.list and man/man3 differ: $(LC_ALL=C sort "$d/pages.list" | diff - "$tmp/have" | grep '^[<>]' | head -5 | tr '\n' ' ')"

# The page of a name, following .so: prints the path of the page read.
target() { # PAGE
    line1=$(head -n 1 "$1")
    case $line1 in
    ".so man3/"*) echo "$d/man3/${line1#.so man3/}" ;;
    *) echo "$1" ;;
    esac
}

# Public functions: the library's exports and the headers' SN_API declarations.
lib=$b/lib/.libs/libsocknet.so
if [ -f "$lib" ]; then
    nm -D --defined-only "$lib" | awk '$2 ~ /^[TW]$/ && $3 ~ /^sn_[a-z0-9]/ {print $3}' >"$tmp/funcs"
else
    echo "note: no $lib (static-only build): the headers' declarations only"
    : >"$tmp/funcs"
fi
cat "$src/include/socknet.h" "$src"/include/socknet/*.h | tr '\n' ' ' | sed 's/;/;\n/g' |
    sed -n 's/.*SN_API[^(]*[ *]\(sn_[a-z0-9_]*\) *(.*/\1/p' >>"$tmp/funcs"
LC_ALL=C sort -u "$tmp/funcs" -o "$tmp/funcs"
n=$(wc -l <"$tmp/funcs")
[ "$n" -ge 100 ] || bad "only $n public functions found"
while read -r f; do
    page=$d/man3/$f.3
    if [ ! -f "$page" ]; then bad "$f has no page ($f.3)"; continue; fi
    t=$(target "$page")
    [ -f "$t" ] || { bad "$f.3 sources ${t##*/}, which is not there"; continue; }
    grep -q "^\.SS \".* \\\\fB$f\\\\fP (\|^\.SS \".* $f (" "$t" ||
        bad "$f.3 leads to ${t##*/}, which does not document $f"
done <"$tmp/funcs"

# A module page per header, each named in the overview.
[ -f "$d/man3/socknet.3" ] || bad "no overview page socknet.3"
for h in "$src"/include/socknet/*.h; do
    m=socknet_$(basename "$h" .h)
    [ -f "$d/man3/$m.3" ] || bad "${h#"$src"/} has no page $m.3"
    grep -q "$m(3)" "$d/man3/socknet.3" 2>/dev/null || bad "socknet.3 does not name $m(3)"
done

# Every page renders, with no warning, and every .so resolves.
pages=0
while read -r p; do
    pages=$((pages + 1))
    case $(head -n 1 "$d/man3/$p") in
    .so*)
        t=$(target "$d/man3/$p")
        [ -f "$t" ] || bad "$p sources ${t##*/}, which is not there"
        continue
        ;;
    esac
    LC_ALL=C grep -q '[^ -~	]' "$d/man3/$p" && bad "$p has bytes other than ASCII"
    MANWIDTH=80 groff -man -ww -z -Tutf8 -rLL=80n "$d/man3/$p" >"$tmp/err" 2>&1
    [ -s "$tmp/err" ] && bad "groff warns on $p: $(head -n 3 "$tmp/err")"
    # man -l reads .so relative to the directory it runs in
    (cd "$d" && MANWIDTH=80 man --warnings=w -l "man3/$p" >"$tmp/out" 2>"$tmp/err")
    [ -s "$tmp/err" ] && bad "man warns on $p: $(head -n 3 "$tmp/err")"
    [ -s "$tmp/out" ] || bad "man renders $p empty"
    grep -q '^NAME' "$tmp/out" || bad "$p renders without a NAME section"
done <"$d/pages.list"
# The overview renders with its text, and a link page opens its module's.
(cd "$d" && MANWIDTH=80 man -l man3/socknet.3 2>&1) | grep -q 'Where to start' ||
    bad "socknet.3 does not render its overview"
(cd "$d" && MANWIDTH=80 man -l man3/sn_read_line.3 2>&1) | grep -q 'sn_read_line (' ||
    bad "sn_read_line.3 does not render sn_read_line's documentation"

[ $fail = 0 ] && echo "ok: $pages pages render without a warning; $n public functions each have one"
exit $fail
