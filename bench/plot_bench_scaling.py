#!/usr/bin/python3
"""Charts `tandem bench scaling --json F` (measured).

Usage: /usr/bin/python3 bench/plot_bench_scaling.py SCALING.json [OUT_STEM]   -> OUT_STEM.png and OUT_STEM.svg
One panel per weight type: decode tok/s per configuration (one sequence: tokens/s of it; "× N
seqs": all sequences together), each bar labelled with its speed-up over one rank (pp1 for the
pipeline rows) and, where the row has it, its share of the read bandwidth (% of roofline).
"""
import sys

from plot_common import load_args, plt, save


def color(cfg: str) -> str:
    if cfg.startswith("PEARL"):
        return "tab:green"
    if "TCP" in cfg:
        return "tab:purple"
    if cfg.startswith("pp") or " seqs" in cfg:
        return "tab:orange"
    return "tab:blue"


def main() -> int:
    args = load_args(__doc__)
    if args is None:
        return 2
    doc, stem = args
    rows = [r for r in doc["results"] if r.get("decode_tok_s")]
    types = sorted({r.get("weight_type", "?") for r in rows})
    n = max(len([r for r in rows if r.get("weight_type", "?") == t]) for t in types)
    fig, axes = plt.subplots(1, len(types), figsize=(6.5 * len(types), 0.42 * n + 1.6), squeeze=False)
    for ax, t in zip(axes[0], types):
        rs = [r for r in rows if r.get("weight_type", "?") == t]
        names = [r["config"] for r in rs]
        vals = [r["decode_tok_s"] for r in rs]
        y = list(range(len(rs)))
        ax.barh(y, vals, color=[color(c) for c in names])
        for yi, r in zip(y, rs):
            label = f" {r['decode_tok_s']:.1f}"
            if r.get("speedup"):
                label += f"  ×{r['speedup']:.2f}"
            if r.get("roofline_pct"):
                label += f"  {r['roofline_pct']:.0f}% of BW"
            ax.text(r["decode_tok_s"], yi, label, va="center", fontsize=7)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, max(vals) * 1.45)
        ax.set_xlabel("tok/s (measured; × N seqs: all sequences)")
        ax.set_title(f"{t}", fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    m = doc.get("machine", {})
    fig.suptitle(f"tandem bench scaling (measured): {m.get('cpu', '?')}, {m.get('cores', '?')} cores; read BW "
                 f"{doc.get('mem_bw_gb_s_1thread', 0):.1f} GB/s 1 thread, {doc.get('mem_bw_gb_s_2threads', 0):.1f} "
                 f"GB/s 2", fontsize=8)
    save(fig, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
