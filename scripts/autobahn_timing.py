#!/usr/bin/env python3
"""Prints the summed case durations per Autobahn group from an index.json."""
import collections
import json
import sys

with open(sys.argv[1]) as f:
    index = json.load(f)
totals = collections.Counter()
for cases in index.values():
    for case, result in cases.items():
        totals[case.split(".")[0]] += result.get("duration", 0)
print("case time per group (ms, summed over cases): " + ", ".join(
    f"{group}: {ms}" for group, ms in sorted(totals.items(), key=lambda kv: int(kv[0]))))
