#!/usr/bin/env bash
# The fan-out benchmark (issue 16): one publisher, N subscribers, each server
# broadcasting in its library's documented pattern (src/fanout.rs), the neutral
# load side checking every delivery (src/bin/fanout.rs).
#
# Usage: benches/compare/fanout.sh
#   env: SERVERS="fastws fastws_twin fastws_send tungstenite tokio_websockets"
#        SUBSCRIBERS="100 1000 10000" SIZES="16 1024 65536" MODES="plain deflate"
#        ROUNDS=2   OUT=results/fanout-DATE.txt
#        SERVER_CPU=0 LOAD_CPU=1   taskset pinning
#
# Messages per run: about 2 million deliveries (200,000 at 64 KiB), at least 50
# messages (20 at 64 KiB). Only fastws
# and fastws_send speak permessage-deflate among these servers: `deflate` runs
# skip the others. Each run starts its server afresh (memory per subscriber is
# measured from its start), is bounded by `timeout`, and the server is killed
# by PID, however the script ends.
set -euo pipefail
cd "$(dirname "$0")"

SERVERS=${SERVERS:-"fastws fastws_twin fastws_send tungstenite tokio_websockets"}
SUBSCRIBERS=${SUBSCRIBERS:-"100 1000 10000"}
SIZES=${SIZES:-"16 1024 65536"}
MODES=${MODES:-"plain deflate"}
ROUNDS=${ROUNDS:-2}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-19400}
mkdir -p results
OUT=${OUT:-results/fanout-$(date +%Y%m%d-%H%M%S).txt}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --bin fanout --bin fanout_server
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

echo "# $(date -Iseconds) fastws $(git -C ../.. rev-parse --short HEAD) rounds=$ROUNDS nproc=$(nproc)" >>"$OUT"
echo "# server subscribers size mode deliveries/s server-us/delivery KiB/subscriber p50-us p99-us" >>"$OUT"
for round in $(seq "$ROUNDS"); do
    for mode in $MODES; do
        for n in $SUBSCRIBERS; do
            for size in $SIZES; do
                if ((size >= 65536)); then
                    messages=$((200000 / n))
                    ((messages >= 20)) || messages=20
                else
                    messages=$((2000000 / n))
                    ((messages >= 50)) || messages=50
                fi
                for server in $SERVERS; do
                    flag=()
                    if [[ $mode == deflate ]]; then
                        [[ $server == fastws* ]] || continue
                        flag=(--deflate)
                    fi
                    echo "round $round/$ROUNDS: $server $mode n=$n size=$size messages=$messages" >&2
                    taskset -c "$SERVER_CPU" target/release/fanout_server "$server" "127.0.0.1:$PORT" "${flag[@]}" &
                    server_pid=$!
                    sleep 0.3
                    timeout 240 taskset -c "$LOAD_CPU" target/release/fanout --name "$server" \
                        --addr "127.0.0.1:$PORT" --server-pid "$server_pid" -n "$n" -s "$size" \
                        -m "$messages" "${flag[@]}" >>"$OUT" ||
                        echo "fanout.sh: FAILED $server $mode n=$n size=$size" >&2
                    kill "$server_pid" 2>/dev/null || true
                    wait "$server_pid" 2>/dev/null || true
                    server_pid=
                    PORT=$((PORT + 1))
                done
            done
        done
    done
done
echo "raw results: $OUT" >&2
# Per cell, the run with the median deliveries/s (its other columns with it).
grep -v '^#' "$OUT" | sort -k1,1 -k2,2n -k3,3n -k4,4 -k5,5n |
    awk '{ key = $1 " " $2 " " $3 " " $4; n[key]++; v[key, n[key]] = $0 }
         END { for (k in n) print v[k, int((n[k] + 1) / 2)] }' | sort -k4,4 -k2,2n -k3,3n -k1,1 |
    awk 'BEGIN { print "| server | subscribers | size | mode | deliveries/s | server µs/delivery | KiB/subscriber | p50 µs | p99 µs |";
                 print "|---|---:|---:|---|---:|---:|---:|---:|---:|" }
         { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
