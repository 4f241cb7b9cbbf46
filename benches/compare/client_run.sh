#!/usr/bin/env bash
# Receive throughput of each client against the neutral server (`client_role`),
# with fastws_twin as the control: ROUNDS rounds, the order rotating by one client
# per round; prints the median messages per second per cell and each client's
# ratio to the best peer, then the CPU time per message of the client's thread
# and of the server's.
#
# Usage: benches/compare/client_run.sh
#   env: ROUNDS=4 MODES="push echo" SIZES="16 1024 65536 1048576" CONNS="1 16"
#        CLIENTS="fastws fastws_twin tungstenite fastwebsockets tokio_websockets raw_tcp"
#        OUT=results/clients-DATE.txt
#   raw lines: client mode size conns msgs/s client-ns/msg server-ns/msg
#   raw_tcp (no library: headers walked, payloads neither copied nor kept) is a
#   reference, not a peer: it is left out of "best peer".
set -euo pipefail
cd "$(dirname "$0")"

ROUNDS=${ROUNDS:-4}
MODES=${MODES:-"push echo"}
SIZES=${SIZES:-"16 1024 65536 1048576"}
CONNS=${CONNS:-"1 16"}
CLIENTS=${CLIENTS:-"fastws fastws_twin tungstenite fastwebsockets tokio_websockets raw_tcp"}
mkdir -p results
OUT=${OUT:-results/clients-$(date +%Y%m%d-%H%M%S).txt}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release --quiet --bin client_role
echo "raw results: $OUT" >&2

read -r -a all <<<"$CLIENTS"
for round in $(seq "$ROUNDS"); do
    first=$(((round - 1) % ${#all[@]}))
    order=("${all[@]:first}" "${all[@]:0:first}")
    for mode in $MODES; do
        for size in $SIZES; do
            for conns in $CONNS; do
                echo "round $round/$ROUNDS: $mode $size B x $conns" >&2
                for client in "${order[@]}"; do
                    MODE=$mode SIZE=$size CONNS=$conns timeout 330 target/release/client_role "$client" |
                        awk -F'|' -v c="$client" -v m="$mode" -v s="$size" -v n="$conns" \
                            'NR > 2 { gsub(/ /, "", $6); print c, m, s, n, $6, $7, $8 }' >>"$OUT" ||
                        echo "client_run.sh: FAILED $client $mode $size x $conns" >&2
                done
            done
        done
    done
done

python3 - "$OUT" "$CLIENTS" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    client, mode, size, conns, rate, *cpu = line.split()
    rows[(mode, int(size), int(conns), client)].append((float(rate), *map(float, cpu)))
clients = sys.argv[2].split()
peers = [c for c in clients if not c.startswith("fastws") and c != "raw_tcp"]
cells = sorted({key[:3] for key in rows}, key=lambda k: (k[0] != "push", k[1], k[2]))
def fmt(x):
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e4 else f"{x:,.0f}"
def cell_text(cell):
    mode, size, conns = cell
    return f"{mode} | {size >> 10} KiB × {conns}" if size >= 1024 else f"{mode} | {size} B × {conns}"
def medians(cell, column):
    return {c: statistics.median(r[column] for r in rows[cell + (c,)])
            for c in clients if rows.get(cell + (c,)) and len(rows[cell + (c,)][0]) > column}

print("Messages per second")
print("| mode | size × conns | " + " | ".join(clients) + " | fastws / best peer | twin / best peer |")
print("|---|---|" + "---:|" * (len(clients) + 2))
for cell in cells:
    med = medians(cell, 0)
    best = max(med[c] for c in peers if c in med)
    line = f"| {cell_text(cell)} | " + " | ".join(fmt(med[c]) if c in med else "–" for c in clients)
    line += f" | **{med['fastws'] / best:.2f}** | {med.get('fastws_twin', float('nan')) / best:.2f} |"
    print(line)

print("\nCPU ns per message, client thread / server thread")
print("| mode | size × conns | " + " | ".join(clients) + " |")
print("|---|---|" + "---:|" * len(clients))
for cell in cells:
    client_cpu, server_cpu = medians(cell, 1), medians(cell, 2)
    print(f"| {cell_text(cell)} | " + " | ".join(
        f"{client_cpu[c]:,.0f} / {server_cpu[c]:,.0f}" if c in client_cpu else "–" for c in clients) + " |")
print(f"\nmedian of {len(next(iter(rows.values())))} rounds per cell")
PY
