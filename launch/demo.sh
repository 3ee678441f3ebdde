#!/usr/bin/env bash
# The README's main command. On a fresh Debian 12 machine: installs what is missing, builds,
# makes a synthetic target + draft model (TinyLlama-1.1B shape, q4_0; once, into build/demo/),
# starts a 2-rank PEARL server (target on rank 0, draft on rank 1) on a free loopback port,
# waits until it reports SERVING, streams one generation through the bundled client (and one
# through the OpenAI-compatible HTTP API with curl, when curl is there), then stops
# the server with SIGTERM and checks that the whole job (every rank) exited 0.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash .ci/setup.sh
bash .ci/build.sh
B=build/bin
D=build/demo
mkdir -p "$D"

if [[ ! -s "$D/target.gguf" || ! -s "$D/draft.gguf" ]]; then
  echo "demo: making a synthetic target + 1-layer draft (random weights, so the text is gibberish)" >&2
  "$B/tandem" model synth --out "$D/target.gguf" --type q4_0 --draft "$D/draft.gguf" --draft-layers 1
fi

rm -f "$D/port" "$D/http.port"
"$B/tandem-mpirun" serve --model "$D/target.gguf" --tp 1 --draft "$D/draft.gguf" --draft-tp 1 \
  --speculation pearl --max-seqs 4 --listen 127.0.0.1:0 --port-file "$D/port" \
  --http-listen 127.0.0.1:0 --http-port-file "$D/http.port" >"$D/server.log" 2>&1 &
server=$!
stop_server() {  # on any exit: never leave the job behind
  if kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$server" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$server" 2>/dev/null || true
  fi
}
trap stop_server EXIT
fail() { echo "demo: $*" >&2; echo "--- server log ($D/server.log) ---" >&2; tail -n 40 "$D/server.log" >&2; exit 1; }

for _ in $(seq 1200); do  # the port file appears once rank 0 listens (port 0: the kernel picks a free one)
  [[ -s "$D/port" && -s "$D/http.port" ]] && break
  kill -0 "$server" 2>/dev/null || fail "the server exited during start-up"
  sleep 0.1
done
[[ -s "$D/port" ]] || fail "the server did not start listening within 120 s"
addr="127.0.0.1:$(cat "$D/port")"
echo "demo: server listening on $addr (log: $D/server.log); waiting for SERVING (load + warm-up)" >&2
"$B/tandem" client health --addr "$addr" --wait 600 >/dev/null || fail "the server never reported SERVING"

echo "demo: streaming one generation (PEARL: drafts on rank 1 while rank 0 verifies)" >&2
"$B/tandem" client generate --addr "$addr" --prompt "Once upon a time" --max-tokens 64 --speculation pearl
"$B/tandem" client info --addr "$addr"
if command -v curl >/dev/null; then
  url="http://127.0.0.1:$(cat "$D/http.port")"
  echo "demo: the same server over its OpenAI-compatible HTTP API ($url/v1/completions, server-sent events):" >&2
  curl -sS -N "$url/v1/completions" -H 'Content-Type: application/json' \
    -d '{"prompt": "Once upon a time", "max_tokens": 8, "stream": true}' || fail "the HTTP request failed"
  curl -sS "$url/metrics" | grep -E '^tandem_(requests_total|generation_tokens_total)' >&2 || true
fi

echo "demo: stopping the server with SIGTERM" >&2
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
trap - EXIT
[[ $rc -eq 0 ]] || fail "the server job exited with status $rc"
if grep -q -E "exited on signal|non-zero exit" "$D/server.log"; then fail "a rank did not exit cleanly"; fi
grep -q "stopped:" "$D/server.log" || fail "rank 0 did not report a clean stop"
echo "demo: done — the server drained and every rank exited 0" >&2
