#!/usr/bin/python3
"""Medians over several `bench/model_check.sh` runs: model_check_median.py RUN1.json RUN2.json ...
Prints a Markdown table (per configuration: median predicted, median measured, their error, the
runs' measured range) and the worst three by |error|."""
import json
import statistics
import sys

runs = [json.load(open(p))["results"] for p in sys.argv[1:]]
keys = []
for run in runs:
    for r in run:
        if (r["type"], r["config"]) not in keys:
            keys.append((r["type"], r["config"]))
rows = []
for t, c in keys:
    got = [r for run in runs for r in run if (r["type"], r["config"]) == (t, c)]
    pm = statistics.median(r["predicted"] for r in got)
    mm = statistics.median(r["measured"] for r in got)
    lo, hi = min(r["measured"] for r in got), max(r["measured"] for r in got)
    rows.append((t, c, got[0]["metric"], pm, mm, 100 * (pm - mm) / mm, lo, hi, len(got)))
print("| type | configuration | metric | predicted (median) | measured (median) | error | measured range | runs |")
print("|---|---|---|---:|---:|---:|---|---:|")
for t, c, m, pm, mm, e, lo, hi, n in rows:
    print(f"| {t} | {c} | {m} | {pm:.2f} | {mm:.2f} | {e:+.1f}% | {lo:.2f}–{hi:.2f} | {n} |")
worst = sorted(rows, key=lambda r: -abs(r[5]))[:3]
print("\nworst three: " + "; ".join(f"{t} {c} {e:+.1f}%" for t, c, _, _, _, e, *_ in worst))
