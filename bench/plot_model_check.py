#!/usr/bin/python3
"""Charts of `tandem bench model-check` (predicted by the cost model vs measured here).

Usage: /usr/bin/python3 bench/plot_model_check.py MODEL_CHECK.json [OUT_STEM]
Writes, each as PNG and SVG (OUT_STEM defaults to the JSON's path without .json):
  OUT_STEM.*          measured vs predicted per configuration, the ±15% band shaded;
  OUT_STEM-roofline.* decode of one sequence (tp1) as % of the 1-thread read bandwidth per type,
                      measured and predicted, with the calibrated GEMV's share;
  OUT_STEM-speedup.*  speed-up over AR vs the measured acceptance per mode (SD, PEARL), measured
                      and predicted.
"""
import sys

from plot_common import load_args, plt, save



def subtitle(doc):
    m = doc.get("machine", {})
    return f"{m.get('cpu', '?')}, {m.get('date', '?')}; median of {doc.get('runs', '?')} runs"


def scatter(doc, rows, stem):
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    colors = {"decode": "tab:blue", "batch": "tab:orange", "speculation": "tab:green", "hosts": "tab:red"}
    lo = min(min(r["predicted"], r["measured"]) for r in rows) * 0.8
    hi = max(max(r["predicted"], r["measured"]) for r in rows) * 1.2
    ax.fill_between([lo, hi], [lo * 0.85, hi * 0.85], [lo * 1.15, hi * 1.15], color="gray", alpha=0.15, label="±15%")
    ax.plot([lo, hi], [lo, hi], ":", color="gray")
    for g, c in colors.items():
        pts = [r for r in rows if r["group"] == g]
        if not pts:
            continue
        ax.errorbar([r["measured"] for r in pts], [r["predicted"] for r in pts],
                    xerr=[[r["measured"] - r["measured_min"] for r in pts], [r["measured_max"] - r["measured"] for r in pts]],
                    fmt="o", color=c, markersize=4, elinewidth=0.8, label=g)
        for r in pts:
            ax.annotate(f"{r['type']} {r['config']}", (r["measured"], r["predicted"]), fontsize=5.5,
                        xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured tok/s (median; bars: range of the runs)")
    ax.set_ylabel("predicted tok/s (cost model)")
    ax.set_title(f"model check: {doc.get('within_15pct', '?')}/{doc.get('configurations', '?')} within ±15%\n"
                 f"{subtitle(doc)}", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    save(fig, stem)


def roofline(doc, rows, stem):
    prof = doc.get("profile", {})
    bw = next((x["gbs"] for x in prof.get("read_gbs", []) if x["threads"] == 1), None)
    pts = [r for r in rows if r["config"] == "tp1" and "weight_gbs" in r]
    if not bw or not pts:
        return
    types = [r["type"] for r in pts]
    x = range(len(pts))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.bar([i - 0.27 for i in x], [100 * r["weight_gbs"]["measured"] / bw for r in pts], 0.27, label="decode, measured")
    ax.bar([i for i in x], [100 * r["weight_gbs"]["predicted"] / bw for r in pts], 0.27, label="decode, predicted")
    gemv = prof.get("layer_gemv_gbs", prof.get("gemv_gbs", {}))
    ax.bar([i + 0.27 for i in x], [100 * gemv.get(t, 0) / bw for t in types], 0.27, label="GEMV (calibration)")
    ax.set_xticks(list(x))
    ax.set_xticklabels(types)
    ax.set_ylabel(f"% of the 1-thread read bandwidth ({bw:.1f} GB/s)")
    ax.set_title(f"decode of one sequence, 1 rank × 1 thread\n{subtitle(doc)}", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, stem)


def speedup(doc, rows, stem):
    spec = [r for r in rows if r["group"] == "speculation"]
    ar = {r["config"].split("@")[1]: r for r in spec if r["mode"] == "ar"}
    if not ar:
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for mode, c in (("sd", "tab:orange"), ("pearl", "tab:green")):
        pts = []
        for r in spec:
            s = r["config"].split("@")[1]
            if r["mode"] == mode and s in ar:
                pts.append((r["acceptance"], r["measured"] / ar[s]["measured"], r["predicted"] / ar[s]["predicted"]))
        pts.sort()
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", color=c, markersize=4, label=f"{mode}, measured")
            ax.plot([p[0] for p in pts], [p[2] for p in pts], "--s", color=c, markersize=3, label=f"{mode}, predicted")
    ax.axhline(1, color="gray", linestyle=":")
    ax.set_xlabel("acceptance α (measured)")
    ax.set_ylabel("speed-up over AR (same target)")
    ax.set_title(f"speculation: 1-layer synthetic draft\n{subtitle(doc)}", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, stem)


def main() -> int:
    args = load_args(__doc__)
    if args is None:
        return 2
    doc, stem = args
    rows = doc["results"]
    if not rows:
        print("no results to chart")
        return 1
    scatter(doc, rows, stem)
    roofline(doc, rows, stem + "-roofline")
    speedup(doc, rows, stem + "-speedup")
    return 0


if __name__ == "__main__":
    sys.exit(main())
