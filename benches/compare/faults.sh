#!/usr/bin/env bash
# Page faults and allocator system calls of one echo server under load, window by
# window, to tell warm-up from steady state (see BENCHMARKS.md, issue 17, target 3).
#
# Usage: benches/compare/faults.sh SERVER [PORT]
#   env: C=16 S=1048576 K=16        the loadgen cell
#        START=1.5 WINDOWS=8 WIN=2  first window's start (s after load begins), count, length (s)
#        SERVER_CPU=0 LOAD_CPU=1    taskset pinning
# Builds the binaries (build.sh), starts target/release/srv_SERVER, runs loadgen for
# the whole span (bounded by timeout), and prints `perf stat` counts per window.
set -euo pipefail
cd "$(dirname "$0")"
server=$1
port=${2:-19500}
C=${C:-16} S=${S:-1048576} K=${K:-16}
START=${START:-1.5} WINDOWS=${WINDOWS:-8} WIN=${WIN:-2}
# shellcheck source=build.sh
source ./build.sh
build_bins
span=$(awk "BEGIN { print int($START + $WINDOWS * $WIN + 2) }")
taskset -c "${SERVER_CPU:-0}" "$BIN/srv_$server" "127.0.0.1:$port" 2>/dev/null &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
sleep 0.5
timeout $((span + 30)) taskset -c "${LOAD_CPU:-1}" "$BIN/loadgen" --server "$server" \
    --addr "127.0.0.1:$port" -c "$C" -s "$S" -k "$K" --warmup 1 --duration "$span" \
    >"/tmp/faults-$server.out" &
load_pid=$!
sleep "$START"
for window in $(seq "$WINDOWS"); do
    perf stat -x, -e page-faults,syscalls:sys_enter_brk,syscalls:sys_enter_munmap,syscalls:sys_enter_mmap \
        -p "$server_pid" sleep "$WIN" 2>&1 |
        awk -F, -v w="$window" '{ sub("syscalls:sys_enter_", "", $3); printf "%s=%s ", $3, $1 } END { print "(window " w ")" }'
done
wait "$load_pid"
awk '{ print "loadgen:", $5, "msgs/s, p99", $8, "µs" }' "/tmp/faults-$server.out"
