#!/usr/bin/env bash
# Instructions each client executes in user space per received message, against the
# neutral server (`client_role`, see src/bin/client_role.rs): the client-role
# counterpart of instructions.sh.
#
# Usage: benches/compare/client_instructions.sh [CLIENT ...]   (default: every client
#        in clients::NAMES; needs valgrind)
#   env: SIZES="16 1024 65536"   message sizes
#        MODE=push               push (the server writes as fast as the client reads)
#                                or echo (one request, one response, at a time)
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
fi
command -v valgrind >/dev/null || {
    echo "client_instructions.sh: needs valgrind (apt-get install valgrind)" >&2
    exit 1
}
case $PROFILE in
release) target_dir=target ;;
lto)
    target_dir=target/lto
    export CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
    ;;
*)
    echo "client_instructions.sh: PROFILE is release or lto" >&2
    exit 2
    ;;
esac
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --target-dir "$target_dir" --bin client_role
tunables=()
[[ $ERMS == on ]] || tunables=(env GLIBC_TUNABLES=glibc.cpu.hwcaps=-ERMS)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# counts SIZE: the warm-up and the two measured counts for messages of SIZE bytes.
counts() {
    if (($1 >= 64 << 10)); then
        echo "2048 2048 10240"
    else
        echo "20000 20000 100000"
    fi
}

# client_instructions CLIENT SIZE WARMUP MEASURED: the client thread's instructions.
client_instructions() {
    local out="$work/callgrind.$1.$2.$4"
    MODE=$MODE SIZE=$2 WARMUP=$3 MEASURED=$4 CONNS=$CONNS timeout 600 "${tunables[@]}" \
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" \
        "$target_dir/release/client_role" "$1" >"$work/log" 2>&1 || {
        echo "client_instructions.sh: $1 failed:" >&2
        tail -5 "$work/log" >&2
        exit 1
    }
    [[ -f "$out-01" && -f "$out-02" && ! -e "$out-03" ]] || {
        echo "client_instructions.sh: expected exactly two threads for $1" >&2
        exit 1
    }
    awk '/^totals:/ { print $2 }' "$out-01"
}

header="| client ($MODE) |"
rule="|---|"
for size in $SIZES; do
    if ((size >= 64 << 10)); then
        header="$header $((size >> 10)) KiB, per KiB |"
    else
        header="$header $size B |"
    fi
    rule="$rule---:|"
done
echo "connections: $CONNS; mode: $MODE; profile: $PROFILE; rep movsb: $ERMS"
echo
echo "$header"
echo "$rule"
for client in "${clients[@]}"; do
    row="| $client |"
    for size in $SIZES; do
        read -r warmup few many <<<"$(counts "$size")"
        short=$(client_instructions "$client" "$size" "$warmup" "$few")
        long=$(client_instructions "$client" "$size" "$warmup" "$many")
        per_message=$(((long - short) / (many - few)))
        if ((size >= 64 << 10)); then
            row="$row $((per_message * 1024 / size)) |"
        else
            row="$row $per_message |"
        fi
    done
    echo "$row"
done
