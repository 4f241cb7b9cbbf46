#!/usr/bin/env bash
# permessage-deflate interop with another implementation: Node's `ws` package.
#
# Usage: bash scripts/interop.sh
#
#   (a) scripts/interop/ws_client.mjs (ws, deflate on) against examples/echo_server;
#   (b) examples/deflate_check (fastws, deflate on) against scripts/interop/ws_server.mjs.
#
# Needs node and npm: installs ws into scripts/interop/node_modules (npm ci from the
# lockfile), builds the two examples in release mode, listens on 127.0.0.1 only,
# bounds every step with a timeout, kills what it started, and exits non-zero
# unless both directions pass. Logs land in target/interop/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dir=scripts/interop
out=target/interop
mkdir -p "$out"

for tool in node npm python3; do
  command -v "$tool" > /dev/null || { echo "interop: $tool not found" >&2; exit 1; }
done

echo "installing ws (node $(node --version))"
if [ -f "$dir/package-lock.json" ]; then
  (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
else
  (cd "$dir" && timeout 300 npm install --no-audit --no-fund --loglevel=error)
fi
timeout 1800 cargo build --release --quiet --example echo_server --example deflate_check

server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
    server=""
  fi
}
trap stop_server EXIT

# A port the kernel just handed out on 127.0.0.1, free again for the server to take.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for the server's "listening" line in its log.
wait_listening() {
  for _ in $(seq 100); do
    grep -q listening "$1" 2> /dev/null && return 0
    kill -0 "$server" 2> /dev/null || break
    sleep 0.1
  done
  echo "interop: the server did not start:" >&2
  tail -20 "$1" >&2
  return 1
}

passed=0
failed=0
# run NAME SERVER_LOG CLIENT_COMMAND...: the server is already started.
run() {
  local name=$1 log=$2
  shift 2
  if wait_listening "$log" && timeout 60 "$@" > "$out/$name.client.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok: $name"
    sed 's/^/    /' "$out/$name.client.log"
  else
    failed=$((failed + 1))
    echo "FAILED: $name"
    sed 's/^/    client: /' "$out/$name.client.log"
    tail -20 "$log" | sed 's/^/    server: /'
  fi
  stop_server
}

port=$(free_port)
target/release/examples/echo_server "127.0.0.1:$port" > "$out/echo_server.log" 2>&1 &
server=$!
run ws_client_to_fastws_server "$out/echo_server.log" node "$dir/ws_client.mjs" "ws://127.0.0.1:$port/"

port=$(free_port)
node "$dir/ws_server.mjs" "$port" > "$out/ws_server.log" 2>&1 &
server=$!
run fastws_client_to_ws_server "$out/ws_server.log" target/release/examples/deflate_check "ws://127.0.0.1:$port/"

echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
