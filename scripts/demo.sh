#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh: sets everything up and runs the project's main demo in the
# foreground: the chat rooms (examples/chat). It prints the URL to open in
# a browser; open it twice, pick a name and the same room. Ctrl-C stops it
# (every member gets close 1001).
#   PORT=8080 HOST=127.0.0.1 scripts/demo.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" "$top/build"

host=${HOST:-127.0.0.1}
port=${PORT:-8080}
url_host=$host
case "$host" in *:*) url_host="[$host]" ;; esac
echo "demo: chat rooms; open  http://$url_host:$port/  in a browser (twice, same room, to chat)"
echo "      (Ctrl-C here stops the server)"
exec "$top/build/examples/chat" --host "$host" --port "$port"
