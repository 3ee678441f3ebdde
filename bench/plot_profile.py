#!/usr/bin/python3
"""Charts a calibration profile's compute profile: T(rows)/T(1) per weight type (measured).

Usage: /usr/bin/python3 bench/plot_profile.py PROFILE.json [OUT_STEM]   -> OUT_STEM.png and .svg
(OUT_STEM defaults to PROFILE-compute, next to the profile)
The dotted line is T(rows)/T(1) = 1 (a step over many rows as cheap as one: purely bandwidth-bound);
the dashed one is rows (no reuse of a weight across rows: purely compute-bound)."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    p = json.load(open(sys.argv[1]))
    stem = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1].removesuffix(".json") + "-compute"
    fig, ax = plt.subplots(figsize=(5.5, 4))
    top = 1
    for t, pts in sorted(p["compute"].items()):
        ax.plot([r for r, _ in pts], [f for _, f in pts], marker="o", markersize=3,
                label=f"{t} (GEMV {p.get('gemv_gbs', {}).get(t, 0):.1f} GB/s)")
        top = max(top, max(r for r, _ in pts))
    ax.plot([1, top], [1, 1], ":", color="gray")
    ax.plot([1, top], [1, top], "--", color="gray", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("rows in the step")
    ax.set_ylabel("T(rows) / T(1)")
    m = p.get("machine", {})
    ax.set_title(f"measured: {m.get('cpu', '?')}, {m.get('date', '?')}", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}", dpi=110)
        print(f"wrote {stem}.{ext}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
