#!/usr/bin/env bash
# permessage-deflate at rest, side by side: resident memory per idle connection of
# echo servers with deflate negotiated, after M messages per connection.
#
# For each round, server and M in {0, 1, 100}: starts the server on core 0, reads its
# VmRSS, opens N connections with the neutral load generator (src/bin/deflate_idle.rs,
# tokio + flate2, on core 1) offering deflate as Chromium does, sends M 1 KiB JSON
# messages on each and checks every echo, waits for the connections to go quiet,
# reads VmRSS again and prints (after - before) / N. Medians per cell at the end.
#
# Usage: benches/deflate_compare/run.sh
#   env: N=2000  ROUNDS=3  MS="0 1 100"  PORT=19700  SETTLE=3 (seconds before the second reading)
#        SERVERS="fastws ws ws_frugal websockets websockets_frugal gorilla gorilla_frugal"
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
root=$(cd ../.. && pwd)

N=${N:-2000}
ROUNDS=${ROUNDS:-3}
MS=${MS:-"0 1 100"}
PORT=${PORT:-19700}
SETTLE=${SETTLE:-3}
SERVERS=${SERVERS:-"fastws ws ws_frugal websockets websockets_frugal gorilla gorilla_frugal"}
HOLD=120 # the load generator exits by itself after this many seconds

# shellcheck source=common.sh
source common.sh
LOAD=target/release/deflate_idle

# One descriptor per connection on each side, plus some.
ulimit -n $((N + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

tmp=$(mktemp -d)
# Every cell's generator output and server stderr stay for a look afterwards.
logs=target/logs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$logs"
trap 'cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "fastws $(git -C "$root" log -1 --format=%h) ($(git -C "$root" status --porcelain -- src examples Cargo.toml | wc -l) changed files), N=$N, ROUNDS=$ROUNDS, $(date -u +%FT%TZ)" >&2
echo "| server | M | KiB per connection | wire ratio |"
echo "|---|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for m in $MS; do
        for server in $SERVERS; do
            PORT=$((PORT + 1))
            cell="$logs/$server-M$m-r$round"
            start_server "$server" "$PORT" "$cell.server"
            before=$(rss_kib "$server_pid")
            taskset -c 1 "$LOAD" --addr "127.0.0.1:$PORT" -n "$N" -m "$m" --hold "$HOLD" \
                >"$cell.out" 2>"$cell.err" &
            load_pid=$!
            pids+=("$load_pid")
            for _ in $(seq 1200); do # at most 120 s
                grep -q '^ready' "$cell.out" && break
                kill -0 "$load_pid" 2>/dev/null || break
                sleep 0.1
            done
            if grep -q '^ready' "$cell.out"; then
                sleep "$SETTLE"
                after=$(rss_kib "$server_pid")
                ratio=$(awk '/^wire_ratio/ { print $2 }' "$cell.out")
                ratio=${ratio:--}
                kib=$(awk -v n="$N" -v b="$before" -v a="$after" 'BEGIN { printf "%.1f", (a - b) / n }')
                neg=$(sed -n 's/^negotiated //p' "$cell.out")
                unc=$(awk '/^uncompressed_echoes/ { print $2 }' "$cell.out")
                echo "$server $m $kib $ratio" >>"$tmp/results"
                echo "$server|$neg|uncompressed echoes: $unc" >>"$tmp/negotiated"
                echo "| $server | $m | $kib | $ratio |"
            else
                echo "run.sh: $server M=$m: the load generator failed: $(tail -3 "$cell.err")" >&2
                echo "$server $m failed -" >>"$tmp/results"
                echo "| $server | $m | failed | - |"
            fi
            cleanup
            # What the server reported, minus the resets of the generator's exit.
            grep -v -e 'listening on' -e 'closed without a close frame' -e 'ECONNRESET' "$cell.server" |
                head -3 | sed "s|^|run.sh: $server M=$m stderr: |" >&2 || true
        done
    done
done

echo
echo "Medians of $ROUNDS round(s), N=$N:"
echo
python3 - "$tmp/results" "$SERVERS" "$MS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
servers, ms = sys.argv[2].split(), sys.argv[3].split()
print("| server | " + " | ".join(f"M={m}: KiB/conn" for m in ms) + " | wire ratio M=1 | wire ratio M=100 |")
print("|---|" + "---:|" * (len(ms) + 2))
def median(server, m, col):
    vals = [r[col] for r in rows if r[0] == server and r[1] == m]
    nums = [float(v) for v in vals if v not in ("failed", "-")]
    if not nums:
        return "failed" if vals else "–"
    text = f"{statistics.median(nums):.{1 if col == 2 else 3}f}"
    return text + (f" ({len(vals) - len(nums)} failed)" if len(nums) < len(vals) else "")
for s in servers:
    cells = [median(s, m, 2) for m in ms]
    ratios = [median(s, m, 3) if m in ms else "–" for m in ("1", "100")]
    print(f"| {s} | " + " | ".join(cells + ratios) + " |")
PY
echo
echo "Negotiated (first connection of each run):"
sort -u "$tmp/negotiated" | sed 's/^/  /'
echo "Logs: $logs" >&2
