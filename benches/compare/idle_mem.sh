#!/usr/bin/env bash
# Resident memory per idle connection: opens N upgraded, silent connections to each
# echo server and prints the growth of the server's VmRSS divided by N.
#
# Usage: benches/compare/idle_mem.sh
#   env: N=5000  SERVERS="fastws tungstenite fastwebsockets tokio_websockets"  PORT=19900
#        FASTWS_REV=HEAD   build fastws from a commit, not the work tree (build.sh)
set -euo pipefail
cd "$(dirname "$0")"

N=${N:-5000}
SERVERS=${SERVERS:-"fastws tungstenite fastwebsockets tokio_websockets"}
PORT=${PORT:-19900}
HOLD=60 # the idle client exits by itself after this many seconds

# shellcheck source=build.sh
source ./build.sh
build_bins
echo "fastws $FASTWS_DESCRIBED" >&2
# One descriptor per connection on each side, plus some.
ulimit -n $((N + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "| server | connections | RSS before (KiB) | RSS after (KiB) | KiB per connection |"
echo "|---|---:|---:|---:|---:|"
for server in $SERVERS; do
    PORT=$((PORT + 1))
    taskset -c 0 "$BIN/srv_$server" "127.0.0.1:$PORT" 2>>"$tmp/server.log" &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 100); do
        ss -Hltn "sport = :$PORT" | grep -q . && break
        sleep 0.1
    done
    sleep 0.5
    before=$(rss_kib "$server_pid")
    taskset -c 1 "$BIN/idle" --addr "127.0.0.1:$PORT" -n "$N" --hold "$HOLD" >"$tmp/idle.out" 2>>"$tmp/idle.log" &
    idle_pid=$!
    pids+=("$idle_pid")
    for _ in $(seq 600); do
        grep -q '^ready' "$tmp/idle.out" && break
        kill -0 "$idle_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$tmp/idle.out"; then
        echo "idle_mem.sh: $server: the idle client did not get its connections up:" >&2
        cat "$tmp/idle.log" >&2
        exit 1
    fi
    sleep 1 # let the server settle (hyper finishes its upgrades, tasks park)
    after=$(rss_kib "$server_pid")
    awk -v s="$server" -v n="$N" -v b="$before" -v a="$after" \
        'BEGIN { printf "| %s | %d | %d | %d | %.1f |\n", s, n, b, a, (a - b) / n }'
    cleanup
done
