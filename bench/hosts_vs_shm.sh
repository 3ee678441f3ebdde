#!/usr/bin/env bash
# tp2 across 2 emulated hosts (TCP over veth, unshaped and tbf-shaped links) against tp2 over
# shared memory on one host, interleaved rounds; and how fast a host without the file is sent its
# shard. Needs root (launch/tandem-hosts).
#   bash bench/hosts_vs_shm.sh MODEL [OUT_DIR]     (ROUNDS=3, LINKS="unshaped 10 1")
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/bin
MODEL=${1:?usage: bench/hosts_vs_shm.sh MODEL [OUT_DIR]}
OUT=${2:-bench-results}
ROUNDS=${ROUNDS:-3}
LINKS=${LINKS:-"unshaped 10 1"}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
H="$B/tandem-hosts --name tbh"
trap '$H destroy >/dev/null 2>&1 || true' EXIT
RUN=(bench run --model "$MODEL" --tp 2 --threads 1 --prompt-tokens 16 --gen-tokens 128)
rows="$OUT/hosts_vs_shm.rows"; : >"$rows"
tok_s() { sed -n 's/^BENCH_JSON //p' | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tok_s"])'; }
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS: shared memory" >&2
  echo "shm $($B/tandem-mpirun "${RUN[@]}" 2>/dev/null | tok_s)" >>"$rows"
  for link in $LINKS; do
    echo "round $round/$ROUNDS: 2 hosts, link $link" >&2
    if [[ $link == unshaped ]]; then $H create 2 >/dev/null 2>&1; else $H create 2 --link-gbit "$link" >/dev/null 2>&1; fi
    echo "$link $($H run -- $B/tandem-mpirun --hostfile /run/tandem-hosts/tbh/hostfile "${RUN[@]}" 2>/dev/null | tok_s)" >>"$rows"
  done
done
# Shard streaming: the file on host 0 only; rank 1's log says how long its bytes took.
dir=$(mktemp -d); cp "$MODEL" "$dir/m.gguf"
stream=""
for link in $LINKS; do
  if [[ $link == unshaped ]]; then $H create 2 --private "$dir" >/dev/null 2>&1; else $H create 2 --link-gbit "$link" --private "$dir" >/dev/null 2>&1; fi
  line=$($H run -- $B/tandem-mpirun --hostfile /run/tandem-hosts/tbh/hostfile generate -m "$dir/m.gguf" --tp 2 --prompt x -n 2 2>&1 \
         | grep "rank 1 .*not on this host; received" | sed 's/.*received \([0-9.]*\) MiB from rank 0 in \([0-9.]*\) s.*/\1 \2/')
  stream+="$link $line"$'\n'
done
rm -rf "$dir"
python3 - "$rows" "$OUT/hosts_vs_shm.json" "$MODEL" "$stream" <<'PY'
import json, statistics as st, sys
rows, out, model, stream = sys.argv[1:]
by = {}
for line in open(rows):
    k, v = line.split()
    by.setdefault(k, []).append(float(v))
shm = st.median(by["shm"])
res = {"model": model, "decode_tok_s": by, "ratio_to_shm": {k: st.median(v) / shm for k, v in by.items()}, "stream": {}}
print(f"{model}: tp2 decode tok/s (medians of {len(by['shm'])} interleaved rounds)")
for k, v in by.items():
    print(f"  {k:>9}: {st.median(v):7.2f} tok/s {v}  ({st.median(v) / shm:.3f}x shared memory)")
for line in stream.strip().splitlines():
    parts = line.split()
    if len(parts) == 3:
        mib, s = float(parts[1]), float(parts[2])
        res["stream"][parts[0]] = {"mib": mib, "seconds": s}
        print(f"  shard streaming over {parts[0]} link: {mib:.1f} MiB to rank 1 in {s:.2f} s ({mib / max(s, 1e-9):.0f} MiB/s)")
json.dump(res, open(out, "w"), indent=2)
PY
