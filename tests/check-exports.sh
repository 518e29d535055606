#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared library exports the sn_* API and nothing else.
lib=${top_builddir:-.}/lib/.libs/libsocknet.so
if [ ! -f "$lib" ]; then echo "no $lib (static-only build?)"; exit 77; fi
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^sn_[a-z0-9]' || true)
if [ -n "$bad" ]; then
    echo "symbols exported that are not sn_* API:"; echo "$bad"; exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/' | grep -c ' sn_' || true)
if [ "$count" -lt 10 ]; then echo "only $count sn_ symbols exported"; exit 1; fi
internal=$(nm -D --defined-only "$lib" | grep ' sn__' || true)
if [ -n "$internal" ]; then echo "internal symbols exported:"; echo "$internal"; exit 1; fi
echo "ok: $count sn_* symbols exported, nothing else"
