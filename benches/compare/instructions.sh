#!/usr/bin/env bash
# Instructions each echo server executes in user space per echoed message: a figure
# that, unlike loopback throughput on a shared VM, is the same in every run.
#
# Usage: benches/compare/instructions.sh [SERVER ...]   (default: every srv_* but the
#        twin; needs valgrind)
#   env: SIZES="16 1024"   message sizes
#        CONNS=16          loopback connections, 16 messages in flight on each
#        PROFILE=release   or `lto`: every server built with thin LTO and one codegen
#                          unit (in target/lto), the profile issue 17's table used
#        ERMS=off          `on` lets glibc copy with `rep movsb`, which callgrind
#                          counts as one instruction however many bytes it copies
#
# `allocs` drives the connections in-process (the server on a thread of its own,
# serving all of them). Under callgrind with --separate-threads, that thread's total
# is counted twice, over 20,000 + 20,000 and 20,000 + 100,000 messages (fewer for
# large messages, see `counts`); the difference divided by 80,000 is what one
# message costs, with the handshake and warm-up gone. Every run ends with nothing in
# flight (`allocs` sends exactly that many messages), so the difference is exact.
# The kernel's share (system calls, TCP) is not in it: raw_tcp shows the floor.
set -euo pipefail
cd "$(dirname "$0")"

SIZES=${SIZES:-"16 1024"}
CONNS=${CONNS:-16}
PROFILE=${PROFILE:-release}
ERMS=${ERMS:-off}
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
case $PROFILE in
release) target_dir=target ;;
lto)
    target_dir=target/lto
    export CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
    ;;
*)
    echo "instructions.sh: PROFILE is release or lto" >&2
    exit 2
    ;;
esac
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --target-dir "$target_dir" --bin allocs
tunables=()
# Without ERMS glibc's memcpy copies with vector moves, one instruction per 32 bytes.
[[ $ERMS == on ]] || tunables=(env GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# counts SIZE: the warm-up and the two measured counts for messages of SIZE bytes,
# fewer for large messages (about 1 GB of payload at 1 MiB).
counts() {
    if (($1 >= 1 << 20)); then
        echo "256 256 1280"
    elif (($1 >= 64 << 10)); then
        echo "4096 2048 10240"
    else
        echo "20000 20000 100000"
    fi
}

# server_instructions SERVER SIZE WARMUP MEASURED: the server thread's instructions.
server_instructions() {
    local out="$work/callgrind.$1.$2.$4"
    SIZE=$2 WARMUP=$3 MEASURED=$4 CONNS=$CONNS timeout 600 "${tunables[@]}" valgrind --tool=callgrind \
        --separate-threads=yes --callgrind-out-file="$out" "$target_dir/release/allocs" "$1" \
        >"$work/log" 2>&1 || {
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
    if ((size >= 64 << 10)); then
        header="$header $((size >> 10)) KiB, per KiB |"
    else
        header="$header $size B |"
    fi
    rule="$rule---:|"
done
echo "connections: $CONNS x 16 in flight; profile: $PROFILE; rep movsb: $ERMS"
echo
echo "$header"
echo "$rule"
for server in "${servers[@]}"; do
    row="| $server |"
    for size in $SIZES; do
        read -r warmup few many <<<"$(counts "$size")"
        short=$(server_instructions "$server" "$size" "$warmup" "$few")
        long=$(server_instructions "$server" "$size" "$warmup" "$many")
        per_message=$(((long - short) / (many - few)))
        if ((size >= 64 << 10)); then
            row="$row $((per_message * 1024 / size)) |"
        else
            row="$row $per_message |"
        fi
    done
    echo "$row"
done
