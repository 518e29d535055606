#!/bin/sh
# SPDX-License-Identifier: MIT
# The layers of lib/README hold in the built library: every call between
# two of lib/'s files goes to a file of the same rank or below, and no two
# files call each other, directly or around a circle. Read from the
# objects: which file defines each symbol that another one uses. And in
# the sources: no file of lib/ includes an internal header of a higher rank
# than its own, every header has a rank in lib/README, and the functions a
# header declares are defined by files of the header's rank.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
objs=$(ls "$top_builddir"/lib/.libs/libsocknet_core_la-*.o 2>/dev/null ||
    ls "$top_builddir"/lib/libsocknet_core_la-*.o 2>/dev/null || true)
if [ -z "$objs" ]; then echo "no objects under $top_builddir/lib"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "rank file" for every file and header lib/README names
awk '/^  [0-9] / { for (i = 2; i <= NF; i++) print $1, $i }' "$top_srcdir/lib/README" >"$tmp/ranks"

# "file symbol D|U" for every object
for o in $objs; do
    f=$(basename "$o" .o)
    f=${f#libsocknet_core_la-}
    nm -P "$o" | awk -v f="$f" '$2 ~ /^[TDBR]$/ { print f, $1, "D" } $2 == "U" { print f, $1, "U" }'
done >"$tmp/syms"

# "from to" for every call between two files
awk '$3 == "D" { owner[$2] = $1 } $3 == "U" { use[NR] = $1 " " $2 }
     END { for (i in use) { split(use[i], p, " "); o = owner[p[2]]
           if (o != "" && o != p[1]) print p[1], o } }' "$tmp/syms" | sort -u >"$tmp/edges"

fail=0
# Each name on stdin has a rank in the table, or is named and counted bad.
ranked() {
    while read -r f; do
        grep -q " $f\$" "$tmp/ranks" || { echo "lib/README gives $f no rank"; echo x >>"$tmp/bad"; }
    done
}
# Each "from to" pair of file $2 goes down or across, never up ($1 names
# the relation); fails on one that goes up.
not_up() { # VERB PAIRS
    awk -v verb="$1" 'NR == FNR { rank[$2] = $1; next }
         rank[$1] != "" && rank[$2] != "" && rank[$1] < rank[$2] {
             print "up a layer: " $1 " (" rank[$1] ") " verb " " $2 " (" rank[$2] ")"; bad = 1 }
         END { exit bad }' "$tmp/ranks" "$2"
}
# every file is in the table, and calls go down or across
cut -d' ' -f1 "$tmp/syms" | sort -u | ranked
not_up calls "$tmp/edges" || fail=1
# no circle: tsort names one if there is
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/loop"; then
    echo "files that call each other:"; cat "$tmp/loop"; fail=1
fi

# "file header" for every internal header a file of lib/ includes (a .c
# file by its name without .c, as in the table)
for f in "$top_srcdir"/lib/*.c "$top_srcdir"/lib/*.h; do
    b=$(basename "$f" .c)
    sed -n "s|^#include \"\(sn_[a-z0-9_]*\.h\)\".*|$b \1|p" "$f"
done >"$tmp/includes"
# every header is in the table, and includes go down or across
for h in "$top_srcdir"/lib/*.h; do basename "$h"; done | ranked
not_up includes "$tmp/includes" || fail=1
# a header's rank is that of the files defining its functions: "header name"
# for each function (or extern object) it declares at the start of a line
for h in "$top_srcdir"/lib/*.h; do
    b=$(basename "$h")
    sed -n -e "s|^[A-Za-z_][A-Za-z0-9_ ]*[ *]\(sn__[a-z0-9_]*\)(.*|$b \1|p" \
        -e "s|^extern .*[ *]\(sn__[a-z0-9_]*\);.*|$b \1|p" "$h"
done >"$tmp/declared"
awk 'FILENAME == ARGV[1] { rank[$2] = $1; next }
     FILENAME == ARGV[2] { if ($3 == "D") owner[$2] = $1; next }
     owner[$2] != "" && rank[$1] != "" && rank[owner[$2]] != rank[$1] {
         print $1 " (" rank[$1] ") declares " $2 ", defined by " owner[$2] " (" rank[owner[$2]] ")"
         bad = 1 }
     END { exit bad }' "$tmp/ranks" "$tmp/syms" "$tmp/declared" || fail=1
[ -f "$tmp/bad" ] && fail=1
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "ok: $(wc -l <"$tmp/edges") calls between files, all down or across, no circle;" \
    "$(wc -l <"$tmp/includes") internal includes, none up a layer;" \
    "$(wc -l <"$tmp/declared") declarations in headers of their definitions' rank"
