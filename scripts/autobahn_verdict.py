#!/usr/bin/env python3
"""Reads an Autobahn index.json; prints per-group counts; exits 1 unless every case
is OK or INFORMATIONAL (NON-STRICT, UNIMPLEMENTED and FAILED all fail the run)."""
import collections
import json
import sys

ACCEPTED = {"OK", "INFORMATIONAL"}

with open(sys.argv[1]) as f:
    index = json.load(f)

groups = collections.defaultdict(collections.Counter)
bad = []
for agent, cases in index.items():
    for case, result in cases.items():
        verdicts = {result.get("behavior"), result.get("behaviorClose")}
        verdict = "OK"
        for v in ("FAILED", "UNIMPLEMENTED", "NON-STRICT", "WRONG CODE", "INFORMATIONAL"):
            if v in verdicts:
                verdict = v
                break
        groups[case.split(".")[0]][verdict] += 1
        if not verdicts <= ACCEPTED:
            bad.append(f"{agent} {case}: {result.get('behavior')} / {result.get('behaviorClose')}")

total = collections.Counter()
for group in sorted(groups, key=int):
    counts = groups[group]
    total.update(counts)
    print(f"group {group:>2}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
print("total:    " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
if not total:
    print("no cases ran")
    sys.exit(1)
if bad:
    print(f"{len(bad)} case(s) not OK:")
    for line in bad[:50]:
        print("  " + line)
    sys.exit(1)
print("every case OK or INFORMATIONAL")
