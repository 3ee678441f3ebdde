#!/usr/bin/env bash
# Start-up errors of an MPI job fail fast, on every rank, with a clear message: a world size that
# does not match the layout, a layout that does not divide the model (--tp, --layer-split, --pp),
# a model file that does not exist, and a draft that only the draft rank opens and fails to load
# (missing, or truncated) — in which case the other ranks must not wait forever for it.
# Each case must exit non-zero within 10 s and print the expected message.
#
#   fail_fast.sh TANDEM_BIN WORK_DIR TESTDATA_DIR
set -uo pipefail
tandem="$1"; work="$2"; testdata="$3"
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --oversubscribe --bind-to none)
failures=0

# A 12-head, 2-layer model (shared tokenizer of the real test models) and a truncated draft.
model="$work/h12_l2.gguf"
if [[ ! -s "$model" ]]; then
  "$tandem" model synth --out "$model.tmp$$" --type f32 --dim 384 --layers 2 --heads 12 --kv-heads 4 --ffn 768 \
    --ctx 256 --vocab-from "$testdata/models/stories260K.gguf" >/dev/null 2>&1 && mv "$model.tmp$$" "$model" ||
    { echo "FAIL: could not synthesize $model"; exit 1; }
fi
truncated="$work/truncated_draft.gguf"
head -c 300000 "$testdata/models/llama2xs-tinystories-280K.gguf" > "$truncated"

# expect_failure NAME MESSAGE_REGEX COMMAND...: non-zero exit in < 10 s, message in the output.
expect_failure() {
  local name="$1" pattern="$2"; shift 2
  local log="$work/$name.log" t0 t1 rc ms
  t0=$(date +%s%N)
  timeout 30 "$@" >"$log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  ms=$(((t1 - t0) / 1000000))
  if ((rc == 0)); then
    echo "FAIL $name: exited 0"; failures=$((failures + 1))
  elif ((rc == 124)); then
    echo "FAIL $name: still running after 30 s (hang)"; failures=$((failures + 1))
  elif ((ms >= 10000)); then
    echo "FAIL $name: took $ms ms (limit 10 s)"; failures=$((failures + 1))
  elif ! grep -Eq -- "$pattern" "$log"; then
    echo "FAIL $name: exit $rc after $ms ms but no message matching /$pattern/; output:"; sed 's/^/    /' "$log" | head -20
    failures=$((failures + 1))
  else
    printf 'ok   %-24s exit %3d in %5d ms: %s\n' "$name" "$rc" "$ms" "$(grep -Eo -m1 -- "$pattern.*" "$log" | cut -c1-110)"
  fi
}

gen=(generate --prompt "Once upon a time" --max-tokens 8)

expect_failure world_size "the layout tp2×pp1 needs 2 ranks.*but the job has 3" \
  "${mpi[@]}" -n 3 "$tandem" "${gen[@]}" --model "$model" --tp 2
expect_failure tp_not_divisor "--tp 5 does not divide the model's 12 attention heads" \
  "${mpi[@]}" -n 5 "$tandem" "${gen[@]}" --model "$model" --tp 5
expect_failure layer_split_sum "--layer-split sums to 3 layers but the model has 2" \
  "${mpi[@]}" -n 2 "$tandem" "${gen[@]}" --model "$model" --pp 2 --layer-split 1,2
expect_failure pp_too_large "--pp 3 exceeds the model's 2 layers" \
  "${mpi[@]}" -n 3 "$tandem" "${gen[@]}" --model "$model" --pp 3
expect_failure missing_model "--model.*(does not exist|not exist).*/nonexistent/model.gguf" \
  "${mpi[@]}" -n 2 "$tandem" "${gen[@]}" --model /nonexistent/model.gguf --tp 2
# Only the draft rank (rank 2) opens the draft: its failure must reach every rank.
expect_failure missing_draft_one_rank "rank 2: .*/nonexistent/draft.gguf" \
  "${mpi[@]}" -n 3 "$tandem" "${gen[@]}" --model "$model" --tp 2 --draft /nonexistent/draft.gguf --draft-tp 1
expect_failure truncated_draft_one_rank "rank 2: .*truncated_draft.gguf" \
  "${mpi[@]}" -n 3 "$tandem" "${gen[@]}" --model "$model" --tp 2 --draft "$truncated" --draft-tp 1
expect_failure draft_tp_without_model "--draft-tp 1 asks for draft ranks, but --draft 'ngram' has no model" \
  "${mpi[@]}" -n 2 "$tandem" "${gen[@]}" --model "$model" --draft ngram --draft-tp 1

if ((failures)); then echo "$failures case(s) failed"; exit 1; fi
echo "all start-up failures were fast and clear"
