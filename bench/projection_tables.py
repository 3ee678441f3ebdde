#!/usr/bin/python3
"""Markdown tables of `tandem bench project`'s JSON (PREDICTIONS of the cost model), as BENCHMARKS.md §9 shows them.

Usage: /usr/bin/python3 bench/projection_tables.py PROJECTION.json
Per model and weight type: predicted decode tok/s of one sequence, best layout on up to N nodes, per mode and network.
"""
import json
import sys


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    doc = json.load(open(sys.argv[1]))
    rows = doc["results"]
    nets = [n["name"] for n in doc["nets"]]
    modes = ["ar", "sd", "pearl"]
    for model, wt in sorted({(r["model"], r["weight_type"]) for r in rows}, key=lambda k: (k[0], k[1] != "q4_k")):
        print(f"**{model} {wt}** (predicted decode tok/s of one sequence, best layout on up to N nodes)\n")
        cols = [(m, n) for m in modes for n in nets]
        print("| nodes | " + " | ".join(f"{m.upper() if m != 'pearl' else 'PEARL'} {n}" for m, n in cols) + " |")
        print("|---:|" + "---|" * len(cols))
        for nodes in sorted({r["nodes"] for r in rows}):
            cells = []
            for m, n in cols:
                r = next((x for x in rows if x["model"] == model and x["weight_type"] == wt and x["nodes"] == nodes
                          and x["mode"] == m and x["net"] == n), None)
                cells.append(f"{r['decode_tok_s']:.1f} `{r['layout']}`" if r and r.get("feasible") else "–")
            print(f"| {nodes} | " + " | ".join(cells) + " |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
