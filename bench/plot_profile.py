#!/usr/bin/python3
"""Charts a calibration profile's compute profile: T(rows)/T(1) per weight type (measured).

Usage: /usr/bin/python3 bench/plot_profile.py PROFILE.json [OUT_STEM]   -> OUT_STEM.png and .svg
(OUT_STEM defaults to PROFILE-compute, next to the profile)
The dotted line is T(rows)/T(1) = 1 (a step over many rows as cheap as one: purely bandwidth-bound);
the dashed one is rows (no reuse of a weight across rows: purely compute-bound)."""
import sys

from plot_common import load_args, plt, save


def main() -> int:
    args = load_args(__doc__, "-compute")
    if args is None:
        return 2
    p, stem = args
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
    save(fig, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
