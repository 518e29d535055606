#!/usr/bin/env bash
# demo.sh: sets everything up and runs the project's main demo in the
# foreground. Today that is the TCP echo server; Ctrl-C stops it.
#   PORT=7000 HOST=127.0.0.1 scripts/demo.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh" "$top/build"

host=${HOST:-127.0.0.1}
port=${PORT:-7000}
echo "demo: echo server; talk to it with:  $top/build/examples/echo-client $host $port   (type lines; Ctrl-C here stops the server)"
exec "$top/build/examples/echo-server" --host "$host" --port "$port"
