#!/usr/bin/env bash
# Runs the Autobahn testsuite (through kosoku) against fastws.
#
# Usage: scripts/autobahn.sh server   # kosoku's fuzzingclient tests examples/echo_server
#        scripts/autobahn.sh client   # examples/autobahn_client runs against kosoku's fuzzingserver
#
# Installs kosoku into a virtualenv (target/autobahn-venv), builds the example in
# release mode, runs the suite and fails unless every case is OK or INFORMATIONAL.
# Reports land in target/autobahn/<mode>/index.json. The whole suite runs,
# permessage-deflate (12.*, 13.*) included; set EXCLUDE to space-separated case
# globs to skip some (e.g. EXCLUDE="12.* 13.*" for a quick run).
set -euo pipefail
mode=${1:-server}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=target/autobahn-venv
out=target/autobahn/$mode
exclude=()
for pattern in ${EXCLUDE:-}; do exclude+=(-x "$pattern"); done

if [ ! -x "$venv/bin/kosoku" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kosoku
fi
rm -rf "$out" && mkdir -p "$out"

case "$mode" in
  server)
    cargo build --release --quiet --example echo_server
    port=${PORT:-9002}
    target/release/examples/echo_server "127.0.0.1:$port" > "$out/server.log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null || true' EXIT
    for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    start=$(date +%s)
    "$venv/bin/kosoku" -m fuzzingclient -p 2 -o "$out" "${exclude[@]}" "127.0.0.1:$port" > "$out/kosoku.log" 2>&1 \
      || { tail -20 "$out/kosoku.log"; exit 1; }
    echo "autobahn server run took $(( $(date +%s) - start )) s"
    python3 scripts/autobahn_timing.py "$out/index.json"
    ;;
  client)
    cargo build --release --quiet --example autobahn_client
    port=${PORT:-9003}
    "$venv/bin/kosoku" -m fuzzingserver -o "$out" "${exclude[@]}" "127.0.0.1:$port" > "$out/kosoku.log" 2>&1 &
    fuzzer=$!
    trap 'kill $fuzzer 2>/dev/null || true' EXIT
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    start=$(date +%s)
    target/release/examples/autobahn_client "ws://127.0.0.1:$port" > "$out/client.log" 2>&1 \
      || { tail -20 "$out/client.log"; exit 1; }
    echo "autobahn client run took $(( $(date +%s) - start )) s"
    for _ in $(seq 50); do [ -s "$out/index.json" ] && break; sleep 0.1; done
    python3 scripts/autobahn_timing.py "$out/index.json"
    ;;
  *) echo "usage: $0 server|client" >&2; exit 2 ;;
esac

python3 scripts/autobahn_verdict.py "$out/index.json"
