#!/usr/bin/env bash
# What the HTTP API costs over gRPC on one server: the same requests through `tandem client bench`
# over gRPC and over HTTP (streamed /v1/completions), interleaved rounds, medians.
#   bash bench/http_vs_grpc.sh MODEL [OUT_DIR]
# Per round: 20 one-token requests at concurrency 1 (time to first token, client side), then 32
# requests of 32 tokens at concurrency 8 (output tokens per second). Writes http_vs_grpc.json.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/bin
MODEL=${1:?usage: bench/http_vs_grpc.sh MODEL [OUT_DIR]}
OUT=${2:-bench-results}
ROUNDS=${ROUNDS:-5}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
. bench/serve_lib.sh
TMP=$(mktemp -d)
trap 'kill -TERM ${SERVER:-} 2>/dev/null || true; rm -rf "$TMP"' EXIT
echo "Once upon a time" >"$TMP/prompt.txt"
HTTP=1 start_server "$TMP/serve.log" -m "$MODEL" --max-seqs 8 --speculation off
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  for api in grpc http; do
    via=(--addr "$ADDR")
    [ $api = http ] && via=(--http "$HTTP_URL")
    $B/tandem client bench "${via[@]}" --requests 20 --concurrency 1 --max-tokens 1 \
      --prompts-file "$TMP/prompt.txt" --json "$TMP/ttft-$api-$round.json" >/dev/null
    $B/tandem client bench "${via[@]}" --requests 32 --concurrency 8 --max-tokens 32 \
      --json "$TMP/c8-$api-$round.json" >/dev/null
  done
done
stop_server
python3 - "$TMP" "$MODEL" "$OUT/http_vs_grpc.json" "$ROUNDS" <<'PY'
import json, statistics as st, sys
tmp, model, out, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
load = lambda kind, api, r: json.load(open(f"{tmp}/{kind}-{api}-{r}.json"))
ttft = {a: [load("ttft", a, r)["ttft_ms"]["p50"] for r in range(1, rounds + 1)] for a in ("grpc", "http")}
tput = {a: [load("c8", a, r)["decode_tok_s"] for r in range(1, rounds + 1)] for a in ("grpc", "http")}
diff = [h - g for g, h in zip(ttft["grpc"], ttft["http"])]
ratio = [h / g for g, h in zip(tput["grpc"], tput["http"])]
r = {"model": model, "ttft_p50_ms": ttft, "output_tok_s_c8": tput,
     "ttft_overhead_ms_median": st.median(diff), "throughput_ratio_median": st.median(ratio)}
json.dump(r, open(out, "w"), indent=2)
print(f"{model}")
print(f"  TTFT p50 (1-token requests, concurrency 1): gRPC median {st.median(ttft['grpc']):.2f} ms, "
      f"HTTP median {st.median(ttft['http']):.2f} ms; HTTP - gRPC per round {[round(d, 2) for d in diff]} "
      f"-> median {st.median(diff):+.2f} ms")
print(f"  output tok/s at concurrency 8: gRPC {[round(x, 1) for x in tput['grpc']]}, HTTP "
      f"{[round(x, 1) for x in tput['http']]}; HTTP/gRPC per round {[round(x, 3) for x in ratio]} -> median "
      f"{st.median(ratio):.3f}")
PY
