#!/usr/bin/env bash
# Multi-host tests over TCP between emulated hosts (launch/tandem-hosts: network namespaces on a
# bridge, Open MPI daemons started inside them, TCP only). Exit 77 (ctest: skipped) with the reason
# when namespaces cannot be made here (not root, no iproute2, no netns support).
#   tests/multihost/multihost.sh BUILD_BIN_DIR MODEL DRAFT WORK_DIR
# - tp2, pp2, PEARL (draft on its own host) on 2 hosts and tp2×pp2 on 4 hosts give exactly the
#   single-rank greedy tokens; `serve` across 2 hosts answers `tandem client generate` with them
#   and names every rank's host;
# - the model (and draft) file on host 0 only: tp2, pp2 and PEARL give the same tokens, rank 1
#   receives exactly its shard (pp2: bytes received = bytes loaded), --model-cache reuses it next
#   time, a corrupt cached shard is detected and fetched again;
# - kill -9 of a rank on a remote host mid-generation ends the job within 5 s naming the rank, and
#   no process is left in any namespace;
# - 20 consecutive launches of a short generation all succeed.
set -uo pipefail
B=${1:?bin dir}; MODEL=${2:?model}; DRAFT=${3:?draft}; WORK=${4:?work dir}
HOSTS="$B/tandem-hosts --name tmh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$WORK"; mkdir -p "$WORK"
if [[ "$(id -u)" != 0 ]]; then echo "SKIP: emulated hosts need root (network namespaces)"; exit 77; fi
if ! ip netns add tmh-probe 2>"$WORK/probe.err"; then echo "SKIP: cannot create network namespaces here: $(cat "$WORK/probe.err")"; exit 77; fi
ip netns del tmh-probe
trap '$HOSTS destroy >/dev/null 2>&1' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
PROMPT="Once upon a time"
GEN=(generate -m "$MODEL" --prompt "$PROMPT" -n 40 --kv-type f32)

"$B/tandem" "${GEN[@]}" --ids-out "$WORK/ref.ids" >/dev/null 2>"$WORK/ref.err" || { echo "FAIL single-rank reference"; cat "$WORK/ref.err"; exit 1; }
[[ -s "$WORK/ref.ids" ]] || { echo "FAIL the reference wrote no ids"; exit 1; }

across() {  # NAME HOSTS-NEEDED tandem-mpirun-args… : runs across the current cluster, compares ids
  local name=$1; shift
  if ! timeout 120 $HOSTS run -- "$B/tandem-mpirun" --hostfile /run/tandem-hosts/tmh/hostfile "$@" \
      --ids-out "$WORK/$name.ids" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    fail "$name: the job failed"; tail -n 5 "$WORK/$name.err" | sed 's/^/    /'; return
  fi
  if cmp -s "$WORK/ref.ids" "$WORK/$name.ids"; then echo "ok   $name: the single-rank tokens"; else fail "$name: tokens differ from the single rank"; fi
  # Ranks really ran on different hosts: the start-up log names them.
  grep -q "on tmh-h1" "$WORK/$name.err" || fail "$name: no rank logged host tmh-h1"
}

# The first cluster doubles as the probe of what this machine allows (bridges, veth pairs).
$HOSTS create 2 >/dev/null 2>"$WORK/create2.err" || { echo "SKIP: emulated hosts cannot be made here: $(tail -n 2 "$WORK/create2.err")"; exit 77; }
# Binding: the emulated hosts are one machine, so tandem-mpirun must not bind, even outside `run`.
bind_line=$(env -u OMPI_MCA_hwloc_base_binding_policy "$B/tandem-mpirun" --dry-run --hostfile /run/tandem-hosts/tmh/hostfile \
  generate -m "$MODEL" --tp 2 2>&1 | grep '^tandem-mpirun: binding')
if [[ "$bind_line" == "tandem-mpirun: binding none: "*"network namespace"* ]]; then echo "ok   binding: $bind_line"
else fail "binding on emulated hosts: $bind_line"; fi
across tp2 "${GEN[@]}" --tp 2
across pp2 "${GEN[@]}" --pp 2
across pearl "${GEN[@]}" --draft "$DRAFT" --speculation pearl   # draft-tp 1 inferred: the draft on host 1

# serve across the two hosts; the client on the machine (the bridge reaches host 0).
portf="$WORK/serve.port"
$HOSTS run -- "$B/tandem-mpirun" --hostfile /run/tandem-hosts/tmh/hostfile serve -m "$MODEL" --tp 2 --kv-type f32 \
  --listen 0.0.0.0:0 --port-file "$portf" >"$WORK/serve.out" 2>"$WORK/serve.err" &
server=$!
for _ in $(seq 300); do [[ -s "$portf" ]] && break; sleep 0.1; done
h0=$(awk '$3 == 0 {print $1}' /run/tandem-hosts/tmh/hosts)
if [[ -s "$portf" ]]; then
  addr="$h0:$(cat "$portf")"
  "$B/tandem" client health --addr "$addr" --wait 60 >/dev/null || fail "serve: never SERVING"
  "$B/tandem" client generate --addr "$addr" --prompt "$PROMPT" -n 40 --ids-out "$WORK/serve.ids" -q >/dev/null 2>"$WORK/client.err" \
    || fail "serve: client generate failed: $(tail -n 2 "$WORK/client.err")"
  cmp -s "$WORK/ref.ids" "$WORK/serve.ids" && echo "ok   serve across hosts: the single-rank tokens" || fail "serve: tokens differ"
  "$B/tandem" client info --addr "$addr" >"$WORK/info.txt" 2>&1
  grep -q "target 1 on tmh-h1" "$WORK/info.txt" && echo "ok   GetServerInfo names the host of every rank" || fail "serve: info does not name rank 1's host: $(grep ranks "$WORK/info.txt")"
else
  fail "serve: no port file"; tail -n 5 "$WORK/serve.err"
fi
kill -TERM "$server" 2>/dev/null; wait "$server" 2>/dev/null

# 20 consecutive short launches.
ok=0
for i in $(seq 20); do
  timeout 60 $HOSTS run -- "$B/tandem-mpirun" --hostfile /run/tandem-hosts/tmh/hostfile generate -m "$MODEL" --tp 2 \
    --prompt "$PROMPT" -n 4 >/dev/null 2>"$WORK/launch-$i.err" && ok=$((ok + 1)) || { echo "    launch $i failed:"; tail -n 3 "$WORK/launch-$i.err"; }
done
((ok == 20)) && echo "ok   20 of 20 consecutive launches" || fail "only $ok of 20 consecutive launches succeeded"

# kill -9 of the rank on host 1 mid-generation: the job ends within 5 s naming it; nothing is left.
$HOSTS run -- "$B/tandem-mpirun" --hostfile /run/tandem-hosts/tmh/hostfile generate -m "$MODEL" --tp 2 --prompt "$PROMPT" \
  -n 100000 --ignore-eos >/dev/null 2>"$WORK/kill.err" &
job=$!
victim=""
for _ in $(seq 200); do
  victim=$(ip netns pids tnh-tmh-1 2>/dev/null | while read -r p; do [[ "$(cat /proc/$p/comm 2>/dev/null)" == tandem ]] && echo "$p"; done | head -n 1)
  [[ -n "$victim" ]] && grep -q "generation\|prompt:" "$WORK/kill.err" 2>/dev/null && break
  [[ -n "$victim" ]] && sleep 0.5 && break
  sleep 0.05
done
if [[ -z "$victim" ]]; then
  fail "kill: no tandem rank found on host 1"
else
  t0=$(date +%s.%N)
  kill -9 "$victim" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$job" 2>/dev/null || break; sleep 0.05; done
  t1=$(date +%s.%N)
  if kill -0 "$job" 2>/dev/null; then fail "kill: the job still runs 5 s after rank 1 died"; kill -9 "$job"
  else
    wait "$job"; rc=$?
    ((rc != 0)) || fail "kill: the job exited 0 after a rank died"
    grep -Eqi "rank 1|process rank 1" "$WORK/kill.err" && echo "ok   kill -9 on host 1: job ended in $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") s (exit $rc), naming rank 1" \
      || fail "kill: no message names rank 1: $(tail -n 3 "$WORK/kill.err")"
  fi
  sleep 0.5
  left=$( (ip netns pids tnh-tmh-0; ip netns pids tnh-tmh-1) 2>/dev/null | wc -l)
  ((left == 0)) && echo "ok   no process left in the namespaces" || fail "kill: $left processes left in the namespaces"
fi

# A host without the model file (host 1 sees an empty private copy of the models' directory): rank
# 0 streams each rank exactly the bytes its shard reads; the tokens are the single rank's.
mkdir -p "$WORK/models"; cp "$MODEL" "$WORK/models/m.gguf"; cp "$DRAFT" "$WORK/models/d.gguf"
$HOSTS create 2 --private "$WORK/models" >/dev/null 2>&1 || fail "tandem-hosts create --private"
NOFILE=(generate -m "$WORK/models/m.gguf" --prompt "$PROMPT" -n 40 --kv-type f32)
streamed() {  # NAME: rank 1 logged that it received its shard
  grep -q "rank 1 on tmh-h1.*not on this host; received" "$WORK/$1.err" || fail "$1: rank 1 logged no received shard"
}
across nofile_tp2 "${NOFILE[@]}" --tp 2; streamed nofile_tp2
across nofile_pp2 "${NOFILE[@]}" --pp 2; streamed nofile_pp2
# The last stage reads no embedding at run time: the bytes it received are exactly the bytes it loaded.
got=$(grep -o "rank 1 on tmh-h1.*+ [0-9]* shard bytes" "$WORK/nofile_pp2.err" | grep -o "[0-9]* shard bytes" | cut -d' ' -f1)
loaded=$(grep -o "rank 1 on tmh-h1.*shard loaded: [0-9.]* MiB ([0-9]* bytes)" "$WORK/nofile_pp2.err" | grep -o "([0-9]* bytes)" | tr -dc 0-9)
[[ -n "$got" && "$got" == "$loaded" ]] && echo "ok   pp2 without the file: rank 1 received exactly its shard ($got bytes)" \
  || fail "pp2 without the file: rank 1 received '$got' shard bytes but loaded '$loaded'"
across nofile_pearl "${NOFILE[@]}" --draft "$WORK/models/d.gguf" --speculation pearl --model-cache "$WORK/cache"
grep -q "draft .*d.gguf: not on this host; received" "$WORK/nofile_pearl.err" && echo "ok   the draft rank was sent the draft model" \
  || fail "pearl without the files: the draft was not streamed"
across nofile_cached "${NOFILE[@]}" --draft "$WORK/models/d.gguf" --speculation pearl --model-cache "$WORK/cache"
grep -q "draft .*using the cached shard" "$WORK/nofile_cached.err" && ! grep -q "received" "$WORK/nofile_cached.err" \
  && echo "ok   --model-cache: the second start reads its shard locally" || fail "--model-cache: the second start did not reuse the cache"
# A corrupt cached shard is detected (SHA-256 against rank 0's bytes) and fetched again.
cached=$(ls "$WORK"/cache/d-*.gguf | head -n 1)
printf 'CORRUPT!' | dd of="$cached" bs=1 seek=200000 conv=notrunc status=none
across nofile_corrupt "${NOFILE[@]}" --draft "$WORK/models/d.gguf" --speculation pearl --model-cache "$WORK/cache"
grep -q "differs from rank 0's file; fetching it again" "$WORK/nofile_corrupt.err" && grep -q "draft .*received" "$WORK/nofile_corrupt.err" \
  && echo "ok   a corrupt cached shard is detected and fetched again" || fail "corrupt cache: not detected"
# Neither host has a file: one clear error.
if timeout 60 $HOSTS run -- "$B/tandem-mpirun" --hostfile /run/tandem-hosts/tmh/hostfile generate -m "$WORK/models/none.gguf" --tp 2 \
    --prompt "$PROMPT" -n 4 >/dev/null 2>"$WORK/nofile.err"; then
  fail "no file anywhere: the job succeeded"
else
  grep -q "the file does not exist: .*none.gguf" "$WORK/nofile.err" && echo "ok   no file on any host: a clear error" \
    || fail "no file anywhere: unclear error: $(tail -n 3 "$WORK/nofile.err")"
fi

# 4 hosts: tp2 × pp2.
$HOSTS create 4 >/dev/null 2>&1 || fail "tandem-hosts create 4"
across tp2pp2 "${GEN[@]}" --tp 2 --pp 2

((failures == 0)) && echo "multihost: all passed" || echo "multihost: $failures failure(s)"
((failures == 0))
