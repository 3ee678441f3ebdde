#!/usr/bin/python3
"""Charts `tandem bench spec --json F` (measured): speed-up over AR against acceptance, per mode.

Usage: /usr/bin/python3 bench/plot_bench_spec.py SPEC.json [OUT_STEM]   -> OUT_STEM.png and OUT_STEM.svg
Left: speed-up over AR on the same layout's AR row (target on rank 0) against the acceptance each
speculative row measured, one line per configuration across the residual scales. Right: the
draft length γ the engine used.
"""
import sys

from plot_common import load_args, plt, save


def main() -> int:
    args = load_args(__doc__)
    if args is None:
        return 2
    doc, stem = args
    rows = [r for r in doc["results"] if r.get("speedup_vs_ar") and "residual_scale" in r]
    configs = []
    for r in rows:
        if r["config"] not in configs and r.get("acceptance", 0) > 0:
            configs.append(r["config"])
    fig, (ax, axg) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for c in configs:
        pts = sorted((r["acceptance"], r["speedup_vs_ar"], r.get("draft_len", 0)) for r in rows if r["config"] == c)
        style = "-" if c.startswith(("SD", "PEARL")) else ":"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=4, label=c)
        axg.plot([p[0] for p in pts], [p[2] for p in pts], style, marker="o", markersize=4, label=c)
    for c in ("AR, target tp=2 (ranks 0-1)",):  # AR on both ranks: a level per scale, no acceptance
        ar2 = [r["speedup_vs_ar"] for r in rows if r["config"] == c]
        if ar2:
            ax.axhline(sum(ar2) / len(ar2), color="grey", ls="--", lw=1, label=f"{c} (mean)")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xlabel("acceptance α (measured)")
    ax.set_ylabel("decode tok/s ÷ AR on rank 0")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    axg.set_xlabel("acceptance α (measured)")
    axg.set_ylabel("draft length γ (engine, mean)")
    axg.grid(True, alpha=0.3)
    m = doc.get("machine", {})
    types = sorted({r.get("weight_type", "?") for r in rows})
    fig.suptitle(f"tandem bench spec (measured), {', '.join(types)}: {m.get('cpu', '?')}, {m.get('cores', '?')} cores",
                 fontsize=8)
    save(fig, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
