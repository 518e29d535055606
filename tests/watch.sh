#!/bin/sh
# SPDX-License-Identifier: MIT
# watch.sh PROGRAM [ARGS...]: make check runs every test through this (LOG_COMPILER).
# A test still running after SN_TEST_LIMIT seconds (default 600) has the stacks of
# all its threads printed (gdb, for it and every process it started), then the
# whole tree is killed and the test fails: a hang ends with evidence in the
# test's log instead of holding make check, and CI, until its own limit.
# The programs' own watchdog (alarm in tests/sn_test.c) fires first when it can;
# this one also covers the scripts, and programs whose SIGALRM never runs
# (a sanitizer defers signals until the thread calls into it).
limit=${SN_TEST_LIMIT:-600}

# The processes of the tree under $1, $1 first.
tree() {
    echo "$1"
    for kid in $(pgrep -P "$1"); do tree "$kid"; done
}

"$@" &
pid=$!
(
    waited=0
    while [ "$waited" -lt "$limit" ]; do
        sleep 1
        kill -0 "$pid" 2>/dev/null || exit 0
        waited=$((waited + 1))
    done
    procs=$(tree "$pid")
    kill -STOP $procs 2>/dev/null
    echo "watch.sh: $1 still running after $limit s (SN_TEST_LIMIT); the stacks:"
    for p in $procs; do
        echo "---- process $p: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)"
        if command -v gdb >/dev/null; then
            gdb -p "$p" -batch -nx -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)'
        else
            for t in /proc/"$p"/task/*; do echo "thread ${t##*/}: $(cat "$t/wchan")"; done
        fi
    done
    kill -KILL $procs 2>/dev/null
) &
watcher=$!
wait "$pid"
rc=$?
kill "$watcher" 2>/dev/null
exit $rc
