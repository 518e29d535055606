#!/bin/sh
# SPDX-License-Identifier: MIT
# The layers of lib/README hold in the built library: every call between
# two of lib/'s files goes to a file of the same rank or below, and no two
# files call each other, directly or around a circle. Read from the
# objects: which file defines each symbol that another one uses.
set -eu
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
objs=$(ls "$top_builddir"/lib/.libs/libsocknet_core_la-*.o 2>/dev/null ||
    ls "$top_builddir"/lib/libsocknet_core_la-*.o 2>/dev/null || true)
if [ -z "$objs" ]; then echo "no objects under $top_builddir/lib"; exit 77; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "rank file" for every file lib/README names
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
# every file is in the table
cut -d' ' -f1 "$tmp/syms" | sort -u | while read -r f; do
    grep -q " $f\$" "$tmp/ranks" || { echo "lib/README gives $f no rank"; echo x >>"$tmp/bad"; }
done
# calls go down or across, never up
awk 'NR == FNR { rank[$2] = $1; next }
     rank[$1] != "" && rank[$2] != "" && rank[$1] < rank[$2] {
         print "up a layer: " $1 " (" rank[$1] ") calls " $2 " (" rank[$2] ")"; bad = 1 }
     END { exit bad }' "$tmp/ranks" "$tmp/edges" || fail=1
# no circle: tsort names one if there is
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/loop"; then
    echo "files that call each other:"; cat "$tmp/loop"; fail=1
fi
[ -f "$tmp/bad" ] && fail=1
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "ok: $(wc -l <"$tmp/edges") calls between files, all down or across, no circle"
