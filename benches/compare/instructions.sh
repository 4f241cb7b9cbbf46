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
export CONNS
# shellcheck source=callgrind.sh
source ./callgrind.sh
callgrind_setup instructions.sh allocs

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

echo "connections: $CONNS x 16 in flight; profile: $PROFILE; rep movsb: $ERMS"
echo
# Thread 1 is the client's (main) thread, thread 2 the server's.
per_message_table server 2 "${servers[@]}"
