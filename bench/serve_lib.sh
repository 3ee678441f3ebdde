# Sourced by the bench scripts: a one-rank `tandem serve` on a free loopback port.
#   start_server LOG SERVE_ARGS...   sets SERVER (pid) and ADDR once the server reports SERVING;
#                                    exits the script if it dies or never gets there; with
#                                    HTTP=1 also serves the HTTP API and sets HTTP_URL
#   stop_server                      SIGTERM, wait (the server drains and exits)
server_failed() {
  echo "$1; from its log ($2):" >&2
  grep -m 3 -E "\[(error|critical)\]" "$2" >&2 || grep -v "^tandem-mpirun:" "$2" | head -n 2 >&2
  exit 1
}

start_server() {
  local log=$1 portf
  shift
  portf=$(mktemp)
  local hportf=$portf.http http_args=()
  [ "${HTTP:-0}" = 1 ] && http_args=(--http-listen 127.0.0.1:0 --http-port-file "$hportf")
  build/bin/tandem-mpirun serve --listen 127.0.0.1:0 --port-file "$portf" "${http_args[@]}" "$@" >"$log" 2>&1 &
  SERVER=$!
  for _ in $(seq 600); do
    [ -s "$portf" ] && break
    kill -0 "$SERVER" 2>/dev/null || server_failed "the server exited before listening" "$log"
    sleep 0.5
  done
  [ -s "$portf" ] || server_failed "the server did not listen within 300 s" "$log"
  ADDR=127.0.0.1:$(cat "$portf")
  if [ "${HTTP:-0}" = 1 ]; then HTTP_URL=http://127.0.0.1:$(cat "$hportf"); rm -f "$hportf"; fi
  rm -f "$portf"
  build/bin/tandem client health --addr "$ADDR" --wait 300 >/dev/null || server_failed "the server never reported SERVING" "$log"
}

stop_server() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" || true
  SERVER=
}
