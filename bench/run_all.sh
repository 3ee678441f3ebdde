#!/usr/bin/env bash
# Runs every benchmark BENCHMARKS.md reports, in one go, writing JSON per benchmark into $OUT
# (default bench-results/) and synthetic models into $WORK (default bench-models/).
#   bash bench/run_all.sh            # after bash .ci/build.sh
# Takes ~30-40 minutes on the 2-core machine; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/bin
OUT=${OUT:-bench-results}
WORK=${WORK:-bench-models}
REPS=${REPS:-3}
STORIES=../shared/testdata/models/stories260K.gguf
mkdir -p "$OUT" "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
. bench/serve_lib.sh

echo "== bench decode (single rank, roofline)"
$B/tandem bench decode --types q4_0,q8_0,q4_k,f16 --threads 1,2 --reps "$REPS" --ctx-test 2048 \
  --work-dir "$WORK" --json "$OUT/decode.json" | tee "$OUT/decode.txt"

echo "== bench decode, Q5_0 / Q5_K next to Q4_K (one thread)"
$B/tandem bench decode --types q4_k,q5_0,q5_k --threads 1 --reps 5 --ctx-test 0 \
  --work-dir "$WORK" --json "$OUT/decode_q5.json" | tee "$OUT/decode_q5.txt"

echo "== bench scaling (tp and pp across ranks)"
$B/tandem bench scaling --types q8_0,q4_0 --reps "$REPS" --work-dir "$WORK" --json "$OUT/scaling.json" | tee "$OUT/scaling.txt"

echo "== bench spec (AR / SD / PEARL / auto at three acceptance levels, n-gram)"
$B/tandem bench spec --type q8_0 --reps "$REPS" --ngram-model "$STORIES" --work-dir "$WORK" \
  --json "$OUT/spec.json" | tee "$OUT/spec.txt"
$B/tandem bench spec --type q4_0 --reps "$REPS" --work-dir "$WORK" --json "$OUT/spec_q4_0.json" | tee "$OUT/spec_q4_0.txt"

echo "== tandem client bench (server on the 1.1B shape, Q8_0; concurrency 1 vs 8)"
MODEL=$(ls "$WORK"/synth-d2048-l22-h32-kv4-f5632-q8_0-s1-r0.05.gguf)
trap 'kill -TERM ${SERVER:-} 2>/dev/null || true' EXIT
start_server "$OUT/serve.log" -m "$MODEL" --max-seqs 8 --speculation off
for c in 1 8; do
  $B/tandem client bench --addr "$ADDR" --requests 16 --concurrency $c --max-tokens 64 \
    --json "$OUT/client_c$c.json" | tee "$OUT/client_c$c.txt"
done
stop_server
trap - EXIT
echo "== server overhead on time to first token (tiny real model, then the 1.1B shape)"
bash bench/ttft.sh "$STORIES" "$OUT" | tee "$OUT/ttft.txt"
echo "== HTTP API against gRPC (time to first token, throughput at concurrency 8)"
bash bench/http_vs_grpc.sh "$STORIES" "$OUT" | tee "$OUT/http_vs_grpc.txt"
cp "$OUT/ttft.json" "$OUT/ttft_stories.json"
bash bench/ttft.sh "$MODEL" "$OUT" | tee -a "$OUT/ttft.txt"
echo "results in $OUT/"
