#!/usr/bin/env bash
# Server overhead on time to first token: the same prompt through `tandem generate` (TTFT measured
# inside the engine, from submission to the first token) and through a one-rank `tandem serve`
# (TTFT seen by the client over a warm gRPC channel: request sent -> first stream message).
#   bash bench/ttft.sh MODEL [OUT_DIR]
# Prints the medians and their difference; writes ttft.json into OUT_DIR (default bench-results/).
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/bin
MODEL=${1:?usage: bench/ttft.sh MODEL [OUT_DIR]}
OUT=${2:-bench-results}
N=${N:-20}
PROMPT="Once upon a time"
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
. bench/serve_lib.sh
TMP=$(mktemp -d)
trap 'kill -TERM ${SERVER:-} 2>/dev/null || true; rm -rf "$TMP"' EXIT

echo "$PROMPT" >"$TMP/prompt.txt"
start_server "$TMP/serve.log" -m "$MODEL" --max-seqs 4 --speculation off

# Interleaved rounds so that drift of the shared machine hits both sides alike.
: >"$TMP/gen.txt"
for round in 1 2 3 4 5; do
  $B/tandem generate -m "$MODEL" --prompt "$PROMPT" -n 1 2>&1 | sed -n 's/.*prompt: [0-9]* tokens in \([0-9.]*\) ms.*/\1/p' >>"$TMP/gen.txt"
  $B/tandem client bench --addr "$ADDR" --requests "$N" --concurrency 1 --max-tokens 1 \
    --prompts-file "$TMP/prompt.txt" --json "$TMP/c$round.json" >/dev/null
done
stop_server

python3 - "$TMP" "$MODEL" "$OUT/ttft.json" <<'EOF'
import json, statistics, sys, glob
tmp, model, out = sys.argv[1:]
gen = [float(x) for x in open(f"{tmp}/gen.txt").read().split()]
srv = [json.load(open(f))["ttft_ms"]["p50"] for f in sorted(glob.glob(f"{tmp}/c*.json"))]
g, s = statistics.median(gen), statistics.median(srv)
r = {"model": model, "generate_ttft_ms": gen, "server_ttft_p50_ms": srv,
     "generate_median_ms": g, "server_median_ms": s, "overhead_ms": s - g}
json.dump(r, open(out, "w"), indent=2)
print(f"{model}: tandem generate TTFT median {g:.2f} ms {gen}; server TTFT (client-side p50 of each round) "
      f"median {s:.2f} ms {[round(x, 2) for x in srv]}; overhead {s - g:+.2f} ms")
EOF
