#!/usr/bin/env bash
# Instructions each client executes in user space per received message, against the
# neutral server (`client_role`, see src/bin/client_role.rs): the client-role
# counterpart of instructions.sh.
#
# Usage: benches/compare/client_instructions.sh [CLIENT ...]   (default: every client
#        in clients::NAMES; needs valgrind)
#   env: SIZES="16 1024 65536"   message sizes
#        MODE=push               push (the server writes as fast as the client reads),
#                                echo (one request, one response, at a time), or
#                                feed (push from memory: no server, no socket, 64 KiB
#                                reads; the count is exact, and raw_tcp's row is the
#                                cost of reading the bytes, to subtract)
#        CONNS=1                 connections, sharing the client's one thread
#        PROFILE=release         or `lto` (in target/lto), as in instructions.sh
#        ERMS=off                as in instructions.sh
#
# Under callgrind with --separate-threads, the client's thread (thread 1, the
# server's is thread 2) is counted over two runs of different lengths; the
# difference divided by the difference in messages is one message's cost, with the
# upgrade and warm-up gone. Each run has a fixed number of messages, so the
# difference is exact up to where reads happen to end.
set -euo pipefail
cd "$(dirname "$0")"

SIZES=${SIZES:-"16 1024 65536"}
MODE=${MODE:-push}
CONNS=${CONNS:-1}
PROFILE=${PROFILE:-release}
ERMS=${ERMS:-off}
if [[ $# -gt 0 ]]; then
    clients=("$@")
else
    clients=(fastws tungstenite fastwebsockets tokio_websockets)
    if [[ $MODE == feed ]]; then clients+=(raw_tcp); fi
fi
if [[ $MODE == feed ]]; then THREADS=1; else THREADS=2; fi
export MODE CONNS THREADS
# shellcheck source=callgrind.sh
source ./callgrind.sh
callgrind_setup client_instructions.sh client_role

# counts SIZE: the warm-up and the two measured counts for messages of SIZE bytes.
counts() {
    if (($1 >= 64 << 10)); then
        echo "2048 2048 10240"
    else
        echo "20000 20000 100000"
    fi
}

echo "connections: $CONNS; mode: $MODE; profile: $PROFILE; rep movsb: $ERMS"
echo
# Thread 1 is the client's (main) thread, thread 2 the server's (none with feed).
per_message_table "client ($MODE)" 1 "${clients[@]}"
