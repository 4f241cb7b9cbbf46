#!/usr/bin/env bash
# A soak test of fastws: examples/soak against examples/echo_server.
#
# Usage: scripts/soak.sh                                    # 1,000 connections for 180 s
#        SOAK_SECONDS=20 SOAK_CONNECTIONS=200 scripts/soak.sh  # a short run
#
# Builds both examples in release mode, raises `ulimit -n` if needed, starts the echo
# server on 127.0.0.1 (SOAK_PORT, default 9301, or the next free port), runs the soak
# with the server's PID (so it samples the server's memory), stops the server, and
# prints the server's error lines counted by kind. A client's abrupt disconnect shows
# there as an i/o error, which is expected; any other kind is worth a look.
# SOAK_ROUNDS (default 1) runs the soak that many times against the same server: memory
# that keeps growing from round to round is a leak, memory that stays is the allocator's.
# SOAK_ARGS passes more options to the soak (see examples/soak/main.rs).
# Logs land in target/soak/. Exits non-zero if the soak fails (an echo mismatch, a hung
# client, the server gone) or if the server died.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${SOAK_SECONDS:-180}
connections=${SOAK_CONNECTIONS:-1000}
rounds=${SOAK_ROUNDS:-1}
out=target/soak
mkdir -p "$out"

nice -n 10 cargo build --release --quiet --example echo_server --example soak

# Each side holds one descriptor per connection, plus some.
need=$((connections + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "soak.sh: ulimit -n is at most $hard, $need needed; connections may fail" >&2
    need=$hard
  fi
  ulimit -n "$need"
fi

port=${SOAK_PORT:-9301}
for _ in $(seq 20); do
  (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
  port=$((port + 1))
done

target/release/examples/echo_server "127.0.0.1:$port" > "$out/server.out" 2> "$out/server.err" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
# Wait for the listening line (a probe connection would leave an error line behind).
for _ in $(seq 100); do grep -q listening "$out/server.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q listening "$out/server.out"; then
  echo "soak.sh: the echo server did not start on port $port" >&2
  cat "$out/server.err" >&2
  exit 1
fi

status=0
for round in $(seq "$rounds"); do
  [ "$rounds" -gt 1 ] && echo "round $round of $rounds"
  # shellcheck disable=SC2086 # SOAK_ARGS is a list of options
  target/release/examples/soak --connections "$connections" --duration "$seconds" --server-pid "$server" \
    ${SOAK_ARGS:-} "ws://127.0.0.1:$port/" | tee "$out/soak.$round.out" || status=$?
  kill -0 "$server" 2>/dev/null || break
done

if kill -0 "$server" 2>/dev/null; then
  kill "$server"
  for _ in $(seq 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server" 2>/dev/null || true
else
  echo "soak.sh: the echo server died during the soak" >&2
  status=1
fi
wait "$server" 2>/dev/null || true
trap - EXIT

# The server prints "PEER: ERROR" per failed connection.
errors=$(wc -l < "$out/server.err")
echo "server errors: $errors (log: $out/server.err)"
sed -E 's/^[^ ]+: //' "$out/server.err" | sort | uniq -c | sort -rn
unexpected=$(grep -cv ': i/o error: ' "$out/server.err" || true)
if [ "$unexpected" -gt 0 ]; then
  echo "server errors other than i/o (not explained by abrupt disconnects): $unexpected"
fi
exit "$status"
