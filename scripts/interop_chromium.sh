#!/usr/bin/env bash
# permessage-deflate interop with a browser: headless Chromium against examples/echo_server.
#
# Usage: bash scripts/interop_chromium.sh
#
# Chromium offers `permessage-deflate; client_max_window_bits`, which fastws answers
# with a 4 KiB client window. The page (scripts/interop/chromium/index.html) echoes
# 603 messages (JSON, binary up to 5 KB, repetitive text up to 24 KB, three 1 MiB
# texts) in three phases with 1.5 s pauses between them, so the server's contexts
# hibernate and wake primed with their history, and checks every echo. Installs
# Debian's chromium when it is missing; listens on 127.0.0.1 only; every step has a
# timeout; exits non-zero unless the page reports all echoes. Logs in target/interop/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=target/interop
mkdir -p "$out"

if ! command -v chromium > /dev/null; then
  echo "interop_chromium: installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium > "$out/chromium-install.log"
fi
timeout 1800 cargo build --release --quiet --example echo_server

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() { # pattern file
  for _ in $(seq 100); do
    grep -q "$1" "$2" 2> /dev/null && return 0
    sleep 0.1
  done
  echo "interop_chromium: no '$1' in $2:" >&2
  tail -20 "$2" >&2
  return 1
}

page_port=$(free_port)
python3 scripts/interop/chromium/serve.py "$page_port" > "$out/chromium-page.log" 2>&1 &
pids+=($!)
ws_port=$(free_port)
target/release/examples/echo_server "127.0.0.1:$ws_port" > "$out/chromium-server.log" 2>&1 &
pids+=($!)
wait_for listening "$out/chromium-page.log"
wait_for listening "$out/chromium-server.log"

profile=$(mktemp -d)
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --remote-debugging-port=0 \
  "http://127.0.0.1:$page_port/index.html?ws=$ws_port" > "$out/chromium.log" 2>&1 &
pids+=($!)
for _ in $(seq 900); do # at most 90 s
  grep -q '^RESULT' "$out/chromium-page.log" && break
  sleep 0.1
done
result=$(sed -n 's/^RESULT //p' "$out/chromium-page.log" | head -1)
rm -rf "$profile"
echo "chromium $(chromium --version 2> /dev/null | awk '{print $2}'): ${result:-no result within 90 s}"
case $result in
  "ok 603 echoes, extensions: permessage-deflate; client_max_window_bits=12") exit 0 ;;
  *) tail -5 "$out/chromium-server.log" >&2; exit 1 ;;
esac
