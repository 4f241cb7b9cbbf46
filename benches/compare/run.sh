#!/usr/bin/env bash
# Runs the echo benchmark matrix and prints the report (see BENCHMARKS.md).
#
# Usage: benches/compare/run.sh
#   env: ROUNDS=3 WARMUP=1 DURATION=3          rounds; seconds of warm-up and measure per run
#        CONNS="1 16 256" SIZES="16 1024 65536 1048576" INFLIGHT="1 16"
#        SERVERS="fastws ... raw_tcp"           which srv_* to run (default: all)
#        OUT=results/run-DATE.txt               raw lines: server C S K msgs/s MB/s p50 p99 p99.9
#        SERVER_CPU=0 LOAD_CPU=1                taskset pinning
#        FASTWS_REV=HEAD                        build fastws from a commit, not the work tree (build.sh)
#
# Each round starts every server once, each on its own port, pinned to SERVER_CPU;
# then, cell by cell, runs the load generator (pinned to LOAD_CPU) against each
# server in turn, and stops the servers. The order rotates by one server per round
# (A B C D, then B C D A, ...): the first run after a change of cell inherits the
# previous cell's aftermath (sockets still closing, memory being freed), and no
# server should always be the one that pays for it. Every run is bounded by
# `timeout`; servers are killed on exit, however the script ends.
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
DURATION=${DURATION:-3}
CONNS=${CONNS:-"1 16 256"}
SIZES=${SIZES:-"16 1024 65536 1048576"}
INFLIGHT=${INFLIGHT:-"1 16"}
SERVERS=${SERVERS:-"fastws fastws_twin fastws_send fastws_batched fastws_forward tungstenite tungstenite_batched tungstenite_forward fastwebsockets tokio_websockets tokio_websockets_batched tokio_websockets_forward raw_tcp"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-19100}
mkdir -p results
OUT=${OUT:-results/run-$(date +%Y%m%d-%H%M%S).txt}
LOG=${OUT%.txt}.log

# shellcheck source=build.sh
source ./build.sh
build_bins
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pids=()
stop_servers() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

wait_for_port() { # port: until something listens on it, at most 10 s
    for _ in $(seq 100); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.1
    done
    echo "run.sh: nothing listens on port $1" >&2
    return 1
}

limit=$(awk "BEGIN { print $WARMUP + $DURATION + 60 }")
{
    echo "# $(date -Is) rounds=$ROUNDS warmup=$WARMUP duration=$DURATION"
    echo "# fastws $FASTWS_DESCRIBED"
    echo "# nproc=$(nproc) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs) kernel=$(uname -r)"
    echo "# server C S K msgs/s MB/s p50 p99 p99.9 (round trips, µs)"
} >>"$OUT"
echo "raw results: $OUT   server log: $LOG" >&2

read -r -a all_servers <<<"$SERVERS"
for round in $(seq "$ROUNDS"); do
    first=$(((round - 1) % ${#all_servers[@]}))
    order=("${all_servers[@]:first}" "${all_servers[@]:0:first}")
    declare -A port=()
    i=0
    for server in $SERVERS; do
        port[$server]=$((BASE_PORT + 100 * (round % 10) + i))
        taskset -c "$SERVER_CPU" "$BIN/srv_$server" "127.0.0.1:${port[$server]}" 2>>"$LOG" &
        pids+=($!)
        i=$((i + 1))
    done
    for server in $SERVERS; do wait_for_port "${port[$server]}"; done
    for c in $CONNS; do
        for s in $SIZES; do
            for k in $INFLIGHT; do
                for server in "${order[@]}"; do
                    echo "round $round/$ROUNDS: $server c=$c s=$s k=$k" >&2
                    timeout "$limit" taskset -c "$LOAD_CPU" "$BIN/loadgen" --server "$server" \
                        --addr "127.0.0.1:${port[$server]}" -c "$c" -s "$s" -k "$k" \
                        --warmup "$WARMUP" --duration "$DURATION" >>"$OUT" 2>>"$LOG" ||
                        echo "run.sh: FAILED $server c=$c s=$s k=$k (see $LOG)" | tee -a "$LOG" >&2
                done
            done
        done
    done
    stop_servers
    unset port
done

python3 report.py "$OUT"
