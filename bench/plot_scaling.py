#!/usr/bin/python3
"""Charts the strong-scaling projection of `tandem bench project` (predictions of the cost model).

Usage: /usr/bin/python3 bench/plot_scaling.py PROJECTION.json [OUT_STEM]   -> OUT_STEM.png and OUT_STEM.svg
One panel per model and weight type: predicted decode tok/s of one sequence against nodes, one
line per speculation mode and network, each point the best layout on up to that many nodes.
"""
import sys

from plot_common import load_args, plt, save


def main() -> int:
    args = load_args(__doc__)
    if args is None:
        return 2
    doc, stem = args
    rows = [r for r in doc["results"] if r.get("feasible")]
    panels = sorted({(r["model"], r["weight_type"]) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    styles = {"25GbE": "--", "100GbE": "-"}
    colors = {"ar": "tab:blue", "sd": "tab:orange", "pearl": "tab:green"}
    for ax, (model, wt) in zip(axes[0], panels):
        for net in styles:
            for mode in colors:
                pts = sorted((r["nodes"], r["decode_tok_s"]) for r in rows
                             if r["model"] == model and r["weight_type"] == wt and r["net"] == net and r["mode"] == mode)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[net], color=colors[mode], marker="o",
                            markersize=3, label=f"{mode} {net}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{model} {wt}")
        ax.set_xlabel("nodes")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("decode tok/s, one sequence (predicted)")
    axes[0][-1].legend(fontsize=7)
    node = doc.get("node", {})
    fig.suptitle(f"PREDICTED strong scaling (cost model): nodes of {node.get('cores')} cores, "
                 f"{node.get('read_gbs')} GB/s; acceptance {doc.get('acceptance')}, draft {doc.get('draft_fraction')} "
                 f"of the target", fontsize=9)
    save(fig, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
