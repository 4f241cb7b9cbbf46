#!/usr/bin/env python3
"""Summarises run.sh's raw lines (`server C S K msgs/s MB/s [p50 p99 p99.9]`, the
round-trip percentiles in µs) as Markdown tables.

Usage: python3 report.py RESULTS.txt [MORE.txt ...]

Prints, per cell (connections x size x in-flight): the median msgs/s of every server
over its rounds; each server's ratio to fastws; the best peer variant (any server
that is neither fastws nor raw TCP); fastws / best peer; fastws / raw TCP; and the
geometric means of those ratios over the cells where both sides were measured; how
many cells fastws wins; and, when the matrix ran `fastws_twin` (the same server under
a second name), how far the two copies landed apart: the noise floor of the run.
Where the lines carry round trips: p50 / p99 / p99.9 per server and cell (medians
over the rounds), and fastws's p99 against the lowest p99 of the peers.
"""

import math
import statistics
import sys
from collections import defaultdict

FASTWS = "fastws"
TWIN = "fastws_twin"
RAW = "raw_tcp"


def is_peer(server):
    return not server.startswith("fastws") and not server.startswith("raw")


def size_label(size):
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def rate_label(rate):
    if rate >= 10_000:
        return f"{rate / 1000:,.0f}k"
    return f"{rate:,.0f}"


def geomean(values):
    values = [v for v in values if v > 0]
    if not values:
        return float("nan")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def load(paths):
    runs = defaultdict(list)  # (server, c, s, k) -> [msgs/s]
    latencies = defaultdict(list)  # (server, c, s, k) -> [(p50, p99, p99.9)] in µs
    order = []
    for path in paths:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if not fields or fields[0].startswith("#") or len(fields) not in (6, 9):
                    continue
                server, c, s, k, rate = fields[:5]
                try:
                    key = (server, int(c), int(s), int(k))
                    rate = float(rate)
                    percentiles = tuple(float(v) for v in fields[6:9])
                except ValueError:
                    continue
                runs[key].append(rate)
                if percentiles:
                    latencies[key].append(percentiles)
                if server not in order:
                    order.append(server)
    return runs, latencies, order


def latency_label(micros):
    if micros >= 10_000:
        return f"{micros / 1000:,.0f} ms"
    if micros >= 1_000:
        return f"{micros / 1000:.1f} ms"
    return f"{micros:.0f}"


def latency_report(latencies, cells, servers, peers, cell_label):
    """p50 / p99 / p99.9 per server and cell, and fastws's p99 against the peers'."""
    if not latencies:
        return
    # Per percentile, the median over the rounds.
    median = {key: tuple(statistics.median(r[i] for r in rounds) for i in range(3))
              for key, rounds in latencies.items()}
    print("\n### Round trips, µs: p50 / p99 / p99.9 (median over the rounds)\n")
    rows = []
    for cell in cells:
        row = [cell_label(cell)]
        for s in servers:
            value = median.get((s, *cell))
            row.append(" / ".join(latency_label(v) for v in value) if value else "–")
        rows.append(row)
    print(table(["conns × size × in-flight"] + servers, rows))
    print("\n### fastws's p99 against the lowest p99 of the peers\n")
    rows = []
    for cell in cells:
        fast = median.get((FASTWS, *cell))
        twin = median.get((TWIN, *cell))
        measured = [(median[(p, *cell)][1], p) for p in peers if (p, *cell) in median]
        if not fast or not measured:
            continue
        best, best_name = min(measured)
        rows.append([cell_label(cell), latency_label(fast[1]), latency_label(twin[1]) if twin else "–",
                     best_name, latency_label(best), f"**{fast[1] / best:.2f}**" if best else "–"])
    print(table(["conns × size × in-flight", "fastws p99", "twin p99", "lowest peer", "its p99",
                 "fastws / lowest"], rows))


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def main(paths):
    runs, latencies, servers = load(paths)
    if not runs:
        sys.exit("report.py: no results in " + " ".join(paths))
    median = {key: statistics.median(rates) for key, rates in runs.items()}
    rounds = {key: len(rates) for key, rates in runs.items()}
    cells = sorted({key[1:] for key in runs})
    peers = [s for s in servers if is_peer(s)]

    def cell_label(cell):
        c, s, k = cell
        return f"{c} × {size_label(s)} × {k}"

    print(f"### Messages per second (median of {min(rounds.values())}–{max(rounds.values())} rounds)\n")
    rows = []
    for cell in cells:
        rows.append([cell_label(cell)] + [rate_label(median[(s, *cell)]) if (s, *cell) in median else "–" for s in servers])
    print(table(["conns × size × in-flight"] + servers, rows))

    print("\n### Ratio to fastws (the README's echo)\n")
    rows = []
    for cell in cells:
        base = median.get((FASTWS, *cell))
        row = [cell_label(cell)]
        for s in servers:
            value = median.get((s, *cell))
            row.append(f"{value / base:.2f}" if base and value is not None else "–")
        rows.append(row)
    print(table(["conns × size × in-flight"] + servers, rows))

    print("\n### fastws against the best peer variant and the raw TCP ceiling\n")
    rows = []
    vs_best, vs_raw, best_vs_raw = [], [], []
    fastws_variants = [s for s in servers if s.startswith("fastws")]
    variant_vs_best = defaultdict(list)
    for cell in cells:
        fast = median.get((FASTWS, *cell))
        raw = median.get((RAW, *cell))
        measured = [(median[(p, *cell)], p) for p in peers if (p, *cell) in median]
        best, best_name = max(measured) if measured else (None, "–")
        row = [cell_label(cell), rate_label(fast) if fast else "–", best_name, rate_label(best) if best else "–"]
        if fast and best:
            vs_best.append(fast / best)
            row.append(f"**{fast / best:.2f}**")
        else:
            row.append("–")
        if fast and raw:
            vs_raw.append(fast / raw)
        row.append(f"{fast / raw:.2f}" if fast and raw else "–")
        if best and raw:
            best_vs_raw.append(best / raw)
        row.append(f"{best / raw:.2f}" if best and raw else "–")
        for v in fastws_variants:
            value = median.get((v, *cell))
            if value and best:
                variant_vs_best[v].append(value / best)
        rows.append(row)
    print(
        table(
            ["conns × size × in-flight", "fastws", "best peer variant", "its msgs/s", "fastws / best peer",
             "fastws / raw TCP", "best peer / raw TCP"],
            rows,
        )
    )

    print("\n### Geometric means over the cells\n")
    won = sum(1 for ratio in vs_best if ratio >= 1)
    print(f"fastws at or above the best peer variant in {won} of {len(vs_best)} cells.")
    for v in fastws_variants:
        if v != FASTWS and variant_vs_best[v]:
            won = sum(1 for ratio in variant_vs_best[v] if ratio >= 1)
            print(f"{v} at or above the best peer variant in {won} of {len(variant_vs_best[v])} cells.")
    twin = [median[(TWIN, *cell)] / median[(FASTWS, *cell)] for cell in cells
            if median.get((TWIN, *cell)) and median.get((FASTWS, *cell))]
    if twin:
        # The twin is the same binary: how far apart it lands is the noise floor.
        print(f"{TWIN} / fastws (the same server twice): from {min(twin):.2f} to {max(twin):.2f}; "
              f"{sum(1 for r in twin if abs(r - 1) > 0.05)} of {len(twin)} cells more than 5 % apart, "
              f"{sum(1 for r in twin if abs(r - 1) > 0.10)} more than 10 %.")
    print()
    rows = [
        ["fastws / best peer variant", f"{geomean(vs_best):.2f}", str(len(vs_best))],
        ["fastws / raw TCP", f"{geomean(vs_raw):.2f}", str(len(vs_raw))],
        ["best peer variant / raw TCP", f"{geomean(best_vs_raw):.2f}", str(len(best_vs_raw))],
    ]
    for v in fastws_variants:
        if v != FASTWS and variant_vs_best[v]:
            rows.append([f"{v} / best peer variant", f"{geomean(variant_vs_best[v]):.2f}", str(len(variant_vs_best[v]))])
    for s in servers:
        if s == FASTWS:
            continue
        ratios = [median[(s, *cell)] / median[(FASTWS, *cell)] for cell in cells
                  if median.get((s, *cell)) and median.get((FASTWS, *cell))]
        if ratios:
            rows.append([f"{s} / fastws", f"{geomean(ratios):.2f}", str(len(ratios))])
    print(table(["ratio", "geometric mean", "cells"], rows))
    latency_report(latencies, cells, servers, peers, cell_label)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
