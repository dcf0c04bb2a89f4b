#!/usr/bin/env python3
"""usage: check.py <expected-pass list> <results.json>
Fails when a test listed as passing did not pass; reports tests that now pass but are not
listed, so the list can be raised. Lines starting with # are comments."""
import json
import re
import sys

expected = [re.sub(r"\[.*\]$", "", l.strip()) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
results = json.load(open(sys.argv[2]))
missing = [t for t in expected if results.get(t) != "success"]
extra = sorted(t for t, s in results.items() if s == "success" and t not in set(expected))
counts = {}
for s in results.values():
    counts[s] = counts.get(s, 0) + 1
print(f"tempest results: {counts}; {len(expected)} expected to pass")
for t in extra:
    print(f"  newly passing (add to {sys.argv[1]}): {t}")
for t in missing:
    print(f"  REGRESSION: expected to pass but {results.get(t, 'absent')}: {t}")
sys.exit(1 if missing else 0)
