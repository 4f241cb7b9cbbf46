#!/usr/bin/env bash
# permessage-deflate at work, side by side: server CPU time per message and messages
# per second of echo servers with deflate negotiated as Chromium offers it.
#
# For each round, size and server (interleaved): starts the server on core 0 and runs
# the neutral load generator (src/bin/deflate_load.rs, tokio + flate2, on core 1):
# C connections x F messages in flight of JSON text, each compressed once up front,
# every echo inflated and checked. The generator samples the server's utime + stime
# after a warm-up and after the run, and reports both figures and the wire ratio.
# fastws_old is the control: fastws when issue 19 was filed, built from a worktree.
# Medians per cell at the end.
#
# Usage: benches/deflate_compare/cpu.sh
#   env: ROUNDS=3  SIZES="1024 65536"  SECONDS_PER_CELL=8  C=16  F=16  PORT=19800
#        SERVERS="fastws fastws_old ws ws_frugal websockets websockets_frugal gorilla gorilla_frugal"
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
root=$(cd ../.. && pwd)

ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-"1024 65536"}
SECONDS_PER_CELL=${SECONDS_PER_CELL:-8}
C=${C:-16}
F=${F:-16}
PORT=${PORT:-19800}
SERVERS=${SERVERS:-"fastws fastws_old ws ws_frugal websockets websockets_frugal gorilla gorilla_frugal"}

# shellcheck source=common.sh
source common.sh
case " $SERVERS " in *" fastws_old "*) build_old_fastws ;; esac
LOAD=target/release/deflate_load

tmp=$(mktemp -d)
logs=target/logs/cpu-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$logs"
trap 'cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

echo "fastws $(git -C "$root" log -1 --format=%h) ($(git -C "$root" status --porcelain -- src examples Cargo.toml | wc -l) changed files), control $OLD_COMMIT, C=$C F=$F, ${SECONDS_PER_CELL} s a cell, ROUNDS=$ROUNDS, $(date -u +%FT%TZ)" >&2
echo "| server | size | msgs/s | server CPU µs/msg | wire ratio |"
echo "|---|---:|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for size in $SIZES; do
        # A message this big takes longer: fewer warm-up messages.
        warmup=$((size > 4096 ? 20 : 200))
        for server in $SERVERS; do
            PORT=$((PORT + 1))
            cell="$logs/$server-$size-r$round"
            start_server "$server" "$PORT" "$cell.server"
            if taskset -c 1 "$LOAD" --addr "127.0.0.1:$PORT" --server-pid "$server_pid" -c "$C" -f "$F" \
                --size "$size" --seconds "$SECONDS_PER_CELL" --warmup "$warmup" >"$cell.out" 2>"$cell.err"; then
                rate=$(awk '/^msgs_per_s/ { print $2 }' "$cell.out")
                cpu=$(awk '/^server_cpu_us_per_msg/ { print $2 }' "$cell.out")
                ratio=$(awk '/^wire_ratio/ { print $2 }' "$cell.out")
                echo "$server $size $rate $cpu $ratio" >>"$tmp/results"
                echo "$server|$(sed -n 's/^negotiated //p' "$cell.out")|uncompressed echoes: $(awk '/^uncompressed_echoes/ { print $2 }' "$cell.out")" >>"$tmp/negotiated"
                echo "| $server | $size | $rate | $cpu | $ratio |"
            else
                echo "cpu.sh: $server size=$size: the load generator failed: $(tail -3 "$cell.err")" >&2
                echo "$server $size failed failed failed" >>"$tmp/results"
                echo "| $server | $size | failed | failed | - |"
            fi
            cleanup
        done
    done
done

echo
echo "Medians of $ROUNDS round(s), C=$C x F=$F:"
echo
python3 - "$tmp/results" "$SERVERS" "$SIZES" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
servers, sizes = sys.argv[2].split(), sys.argv[3].split()
print("| server | " + " | ".join(f"{s} B: msgs/s | {s} B: CPU µs/msg | {s} B: wire ratio" for s in sizes) + " |")
print("|---|" + "---:|" * (3 * len(sizes)))
def median(server, size, col, digits):
    vals = [r[col] for r in rows if r[0] == server and r[1] == size]
    nums = [float(v) for v in vals if v != "failed"]
    if not nums:
        return "failed" if vals else "–"
    text = f"{statistics.median(nums):.{digits}f}"
    return text + (f" ({len(vals) - len(nums)} failed)" if len(nums) < len(vals) else "")
for s in servers:
    cells = []
    for size in sizes:
        cells += [median(s, size, 2, 0), median(s, size, 3, 1), median(s, size, 4, 3)]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
echo
echo "Negotiated (first connection of each run):"
sort -u "$tmp/negotiated" | sed 's/^/  /'
