#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/ab-run.sh — two versions of libsocknet against each other, in one run: the
# TCP and WebSocket tables of bench/run.sh and the hub table of bench/hub-run.sh, with the
# old build's servers as "ref" and the new build's as "ours", round after round
# alternating, so that a redesign can show that no row got worse beyond the noise.
#
#   bench/ab-run.sh OLD_BUILDDIR NEW_BUILDDIR [--rounds N] [--out FILE] [--only tcp|ws|hub]
#
#   OLD_BUILDDIR, NEW_BUILDDIR  build directories of the two versions (configured alike;
#                   each needs examples/ built); the load generators and the npm packages
#                   come from NEW_BUILDDIR (make bench-hub and the bench programs)
#   --rounds N      rounds per figure (default 3); medians, and the range of per-round ratios
#   --out FILE      Markdown file the sections are appended to (default bench/RESULTS.md)
#   --only WHICH    one of the three tables
#
# ours/ref above 1 means the new version is faster (for rates) or, for memory and latency
# rows, that the new version uses more. Each section's note names both commits.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,19p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
old=$(cd "$1" && pwd) && new=$(cd "$2" && pwd) || usage
shift 2
rounds=3 out=$here/RESULTS.md only=
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) [[ ${2:-} =~ ^[1-9]$ ]] || usage; rounds=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --only) [[ ${2:-} =~ ^(tcp|ws|hub)$ ]] || usage; only=$2; shift 2 ;;
    *) usage ;;
    esac
done

# The commit a build directory was made from (its source tree's HEAD), or "?".
rev_of() {
    local src
    src=$(sed -n "s/^abs_top_srcdir = //p" "$1/Makefile" 2>/dev/null)
    git -C "${src:-$1}" rev-parse --short HEAD 2>/dev/null || echo "?"
}
note="A/B: ref = the old build ($(rev_of "$old"), $old), ours = the new build ($(rev_of "$new"), $new), alternating."
rc=0
if [ -z "$only" ] || [ "$only" = tcp ]; then
    "$here/run.sh" --builddir "$new" --only tcp --rounds "$rounds" --out "$out" --note "$note" \
        --ref "$old/examples/echo-server --workers 4096" \
        --ours "$new/examples/echo-server --workers 4096" || rc=1
fi
if [ -z "$only" ] || [ "$only" = ws ]; then
    "$here/run.sh" --builddir "$new" --only ws --rounds "$rounds" --out "$out" --note "$note" \
        --wref "$old/examples/ws-echo" --wours "$new/examples/ws-echo" --wfloor "" || rc=1
fi
if [ -z "$only" ] || [ "$only" = hub ]; then
    "$here/hub-run.sh" --builddir "$new" --rounds "$rounds" --out "$out" --note "$note" \
        --ref "$old/examples/chat --presence off" --ref-name "old (hub)" \
        --ours "$new/examples/chat --presence off" --ours-name "new (hub)" || rc=1
fi
exit $rc
