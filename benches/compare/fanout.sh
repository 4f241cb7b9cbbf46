#!/usr/bin/env bash
# The fan-out benchmark (issue 16): one publisher, N subscribers, each server
# broadcasting in its library's documented pattern, the neutral load side
# checking every delivery (src/bin/fanout.rs).
#
# Usage: benches/compare/fanout.sh
#   env: SERVERS="fastws fastws_twin fastws_send tungstenite tokio_websockets
#                 fastwebsockets gorilla node_ws"
#        SUBSCRIBERS="100 1000 10000" SIZES="16 1024 65536" MODES="plain deflate"
#        ROUNDS=2   OUT=results/fanout-DATE.txt
#        SERVER_CPU=0 LOAD_CPU=1   taskset pinning
#
# The servers: fanout_server NAME (src/fanout.rs) for fastws, fastws_twin,
# fastws_send, tungstenite, tokio_websockets and fastwebsockets; gorilla is
# go/fanout_gorilla (gorilla/websocket's PreparedMessage), built here in GOPATH
# mode against Debian's golang-github-gorilla-websocket-dev when `go` is
# installed; node_ws is node/fanout_ws.mjs (Node's ws), its node_modules
# installed here from the lockfile when missing. A server whose toolchain is
# missing is skipped with a message. Each takes ADDR [--deflate].
#
# Messages per run: about 2 million deliveries (200,000 at 64 KiB), at least 50
# messages (20 at 64 KiB). permessage-deflate: fastws, fastws_twin and
# fastws_send (one compression per message for fastws, one per subscriber for
# fastws_send), gorilla (once per message, no context takeover) and node_ws
# (per subscriber, from 1024 bytes up); `deflate` runs skip the others. Each run
# starts its server afresh (memory per subscriber is measured from its start),
# is bounded by `timeout`, and the server is killed by PID, however the script
# ends.
set -euo pipefail
cd "$(dirname "$0")"

SERVERS=${SERVERS:-"fastws fastws_twin fastws_send tungstenite tokio_websockets fastwebsockets gorilla node_ws"}
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

# The servers outside this crate, each dropped from SERVERS when it cannot be
# built.
drop_server() {
    echo "fanout.sh: skipping $1: $2" >&2
    SERVERS=$(tr ' ' '\n' <<<"$SERVERS" | grep -vx "$1" | tr '\n' ' ')
}
gorilla=target/go/bin/fanout_gorilla
if [[ " $SERVERS " == *" gorilla "* ]]; then
    if ! command -v go >/dev/null; then
        drop_server gorilla "no Go toolchain (apt-get install golang-go golang-github-gorilla-websocket-dev)"
    elif ! GO111MODULE=off GOPATH="/usr/share/gocode:$PWD/target/go" \
        go build -o "$gorilla" ./go/fanout_gorilla; then
        drop_server gorilla "go build failed (is golang-github-gorilla-websocket-dev installed?)"
    fi
fi
if [[ " $SERVERS " == *" node_ws "* ]]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        drop_server node_ws "no node and npm"
    elif [[ ! -d node/node_modules/ws ]] &&
        ! (cd node && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
        drop_server node_ws "npm could not install ws"
    fi
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT
# Waits (up to 10 s) until something listens on 127.0.0.1:PORT, from
# /proc/net/tcp rather than a probe connection the server would see.
wait_listening() {
    local local_address
    local_address=$(printf '0100007F:%04X' "$1")
    for _ in $(seq 100); do
        awk -v a="$local_address" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp && return
        sleep 0.1
    done
    echo "fanout.sh: nothing listens on port $1" >&2
}

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
                        [[ $server == fastws* || $server == gorilla || $server == node_ws ]] || continue
                        flag=(--deflate)
                    fi
                    echo "round $round/$ROUNDS: $server $mode n=$n size=$size messages=$messages" >&2
                    case $server in
                    gorilla) command=("$gorilla") ;;
                    node_ws) command=(node node/fanout_ws.mjs) ;;
                    *) command=(target/release/fanout_server "$server") ;;
                    esac
                    taskset -c "$SERVER_CPU" "${command[@]}" "127.0.0.1:$PORT" "${flag[@]}" &
                    server_pid=$!
                    wait_listening "$PORT"
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
