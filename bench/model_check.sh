#!/usr/bin/env bash
# Model check: predictions of the cost model against configurations measured here, in one sitting
# (calibration first, so both rest on the same state of the machine).
#   bash bench/model_check.sh [OUT_DIR]      (run under `cpulock bench` on a shared machine)
# Per type (q8_0, q4_0; TinyLlama-1.1B shape, synthetic): tp1 and tp2 decode of one sequence
# (1 thread per rank), tp1×pp1 / tp1×pp2 with 8 concurrent sequences; q8_0 SD and PEARL. Writes
# OUT_DIR/model-check.json and prints predicted vs measured.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${TANDEM_BIN_DIR:-$here/build/bin}"
out="${1:-$here/bench/results}"
models="${MODELS_DIR:-$here/build/model-check-models}"
mkdir -p "$out" "$models"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --allow-run-as-root --bind-to none --oversubscribe)
"${mpi[@]}" -n 2 "$bin/tandem" bench calibrate --out "$out/model-check-profile.json" --types q8_0,q4_0 >&2
rows="$out/model-check.rows"; : > "$rows"
for t in q8_0 q4_0; do
  m="$models/tinyllama-$t.gguf"
  [[ -f "$m" ]] || "$bin/tandem" model synth --type "$t" --out "$m" >&2
  run() {  # name, ranks, tandem bench run flags...
    local name="$1" n="$2"; shift 2
    local j
    j=$("${mpi[@]}" -n "$n" "$bin/tandem" bench run --model "$m" --threads 1 --prompt-tokens 32 "$@" 2>/dev/null | sed -n 's/^BENCH_JSON //p')
    echo "{\"type\":\"$t\",\"config\":\"$name\",\"measured\":$j}" >> "$rows"
  }
  run tp1 1 --gen-tokens 96
  run tp2 2 --tp 2 --gen-tokens 96
  run pp1x8 1 --seqs 8 --gen-tokens 48
  run pp2x8 2 --pp 2 --seqs 8 --gen-tokens 48
  for w in 1 2; do
    "$bin/tandem" plan --model "$m" --profile "$out/model-check-profile.json" --world "$w" --ctx 80 --batch 8 \
      --max-seqs 8 --json "$out/model-check-plan-$t-$w.json" > /dev/null 2>&1
  done
done
# Speculation (q8_0): a 1-layer draft sharing the target's embeddings and head streams
# (1 layer + head) / (22 layers + head) = 0.106 of the target's bytes; residual scale 0.035 gives
# acceptance ≈ 0.8. The measured acceptance goes into the prediction.
t=q8_0; m="$models/spec-target-$t.gguf"; d="$models/spec-draft-$t.gguf"
[[ -f "$m" && -f "$d" ]] || "$bin/tandem" model synth --type "$t" --out "$m" --draft "$d" --draft-layers 1 --residual-scale 0.035 >&2
for mode in sd pearl; do
  n=1; extra=(); [[ $mode == pearl ]] && n=2 && extra=(--draft-tp 1)
  j=$("${mpi[@]}" -n "$n" "$bin/tandem" bench run --model "$m" --draft "$d" "${extra[@]}" --speculation "$mode" \
      --threads 1 --prompt-tokens 32 --gen-tokens 96 2>/dev/null | sed -n 's/^BENCH_JSON //p')
  a=$(/usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['acceptance'])" "$j")
  echo "{\"type\":\"$t\",\"config\":\"$mode\",\"measured\":$j}" >> "$rows"
  "$bin/tandem" plan --model "$m" --profile "$out/model-check-profile.json" --world "$n" --ctx 80 --max-seqs 8 \
    --speculation "$mode" --acceptance "$a" --draft-fraction 0.106 --draft-layers 1 \
    --json "$out/model-check-plan-$t-$mode.json" > /dev/null 2>&1
done
/usr/bin/python3 - "$out" "$rows" <<'PY'
import json, sys
out, rows = sys.argv[1], sys.argv[2]
res = []
for line in open(rows):
    r = json.loads(line)
    t, cfg, meas = r["type"], r["config"], r["measured"]
    world = 2 if cfg in ("tp2", "pp2x8", "pearl") else 1
    layout = {"tp1": "tp1×pp1", "tp2": "tp2×pp1", "pp1x8": "tp1×pp1", "pp2x8": "tp1×pp2", "sd": "tp1×pp1",
              "pearl": "tp1×pp1+draft1"}[cfg]
    mode = cfg if cfg in ("sd", "pearl") else "ar"
    plan = json.load(open(f"{out}/model-check-plan-{t}-{mode if mode != 'ar' else world}.json"))
    p = next(x for x in plan["results"] if x["layout"] == layout and x["mode"] == mode)
    key = "throughput_tok_s" if cfg.endswith("x8") else "decode_tok_s"
    pred, got = p[key], meas["decode_tok_s"]
    res.append({"type": t, "config": cfg, "layout": layout, "metric": key, "predicted": pred, "measured": got,
                "error_pct": 100.0 * (pred - got) / got, "acceptance": meas.get("acceptance", 0),
                "draft_len": {"measured": meas.get("draft_len", 0), "predicted": p.get("draft_len", 0)}})
print(f"{'type':6} {'config':7} {'metric':17} {'predicted':>10} {'measured':>10} {'error':>8}  acceptance, γ measured/predicted")
for r in res:
    extra = f"  {r['acceptance']:.3f}, {r['draft_len']['measured']:.2f}/{r['draft_len']['predicted']}" if r["acceptance"] else ""
    print(f"{r['type']:6} {r['config']:7} {r['metric']:17} {r['predicted']:10.2f} {r['measured']:10.2f} {r['error_pct']:+7.1f}%{extra}")
json.dump({"benchmark": "model-check", "results": res,
           "profile": json.load(open(f"{out}/model-check-profile.json"))}, open(f"{out}/model-check.json", "w"), indent=2)
print(f"wrote {out}/model-check.json")
PY
