#!/usr/bin/env bash
# Instructions each echo server executes in user space per echoed message: a figure
# that, unlike loopback throughput on a shared VM, is the same in every run.
#
# Usage: benches/compare/instructions.sh [SERVER ...]   (default: every srv_* but the
#        twin; needs valgrind)
#   env: SIZES="16 1024"   message sizes
#
# `allocs` drives one loopback connection in-process (16 in flight; the server on a
# thread of its own). Under callgrind with --separate-threads, that thread's total is
# counted twice, over 20,000 + 20,000 and 20,000 + 100,000 messages; the difference
# divided by 80,000 is what one message costs, with the handshake and warm-up gone.
# The kernel's share (system calls, TCP) is not in it: raw_tcp shows the floor.
set -euo pipefail
cd "$(dirname "$0")"

SIZES=${SIZES:-"16 1024"}
if [[ $# -gt 0 ]]; then
    servers=("$@")
else
    servers=(fastws fastws_send fastws_batched fastws_forward tungstenite tungstenite_batched
        tungstenite_forward fastwebsockets tokio_websockets tokio_websockets_batched
        tokio_websockets_forward raw_tcp)
fi
command -v valgrind >/dev/null || {
    echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2
    exit 1
}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --bin allocs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# server_instructions SERVER SIZE MEASURED: the server thread's instructions.
server_instructions() {
    local out="$work/callgrind.$1.$2.$3"
    SIZE=$2 MEASURED=$3 timeout 600 valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$out" target/release/allocs "$1" >"$work/log" 2>&1 || {
        echo "instructions.sh: $1 failed:" >&2
        tail -5 "$work/log" >&2
        exit 1
    }
    # Thread 1 is the client's (main) thread, thread 2 the server's; no other.
    [[ -f "$out-02" && ! -e "$out-03" ]] || {
        echo "instructions.sh: expected exactly two threads for $1" >&2
        exit 1
    }
    awk '/^totals:/ { print $2 }' "$out-02"
}

header="| server |"
rule="|---|"
for size in $SIZES; do
    header="$header $size B |"
    rule="$rule---:|"
done
echo "$header"
echo "$rule"
for server in "${servers[@]}"; do
    row="| $server |"
    for size in $SIZES; do
        short=$(server_instructions "$server" "$size" 20000)
        long=$(server_instructions "$server" "$size" 100000)
        row="$row $(((long - short) / 80000)) |"
    done
    echo "$row"
done
