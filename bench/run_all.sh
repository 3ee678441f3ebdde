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

echo "== bench decode (single rank, roofline)"
$B/tandem bench decode --types q4_0,q8_0,q4_k,f16 --threads 1,2 --reps "$REPS" --ctx-test 2048 \
  --work-dir "$WORK" --json "$OUT/decode.json" | tee "$OUT/decode.txt"

echo "== bench scaling (tp and pp across ranks)"
$B/tandem bench scaling --types q8_0,q4_0 --reps "$REPS" --work-dir "$WORK" --json "$OUT/scaling.json" | tee "$OUT/scaling.txt"

echo "== bench spec (AR / SD / PEARL / auto at three acceptance levels, n-gram)"
$B/tandem bench spec --type q8_0 --reps "$REPS" --ngram-model "$STORIES" --work-dir "$WORK" \
  --json "$OUT/spec.json" | tee "$OUT/spec.txt"

echo "== tandem client bench (server on the 1.1B shape, Q8_0; concurrency 1 vs 8)"
MODEL=$(ls "$WORK"/synth-d2048-l22-h32-kv4-f5632-q8_0-s1-r0.05.gguf)
PORTF=$(mktemp)
$B/tandem-mpirun serve -m "$MODEL" --max-seqs 8 --listen 127.0.0.1:0 --port-file "$PORTF" --speculation off \
  >"$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do [ -s "$PORTF" ] && break; sleep 1; done
ADDR=127.0.0.1:$(cat "$PORTF")
$B/tandem client health --addr "$ADDR" --wait 300
for c in 1 8; do
  $B/tandem client bench --addr "$ADDR" --requests 16 --concurrency $c --max-tokens 64 \
    --json "$OUT/client_c$c.json" | tee "$OUT/client_c$c.txt"
done
# Server overhead on time to first token: the same prompt through tandem generate and the server.
$B/tandem generate -m "$MODEL" --prompt "Once upon a time" -n 8 --ignore-eos 2>&1 | grep -o "prompt: .*" | tee "$OUT/ttft_generate.txt"
for _ in 1 2 3; do
  $B/tandem client generate --addr "$ADDR" --prompt "Once upon a time" --max-tokens 8 --ignore-eos 2>&1 >/dev/null | tail -1
done | tee "$OUT/ttft_server.txt"
kill -TERM $SERVER; wait $SERVER || true
trap - EXIT
echo "results in $OUT/"
