#!/usr/bin/env bash
# A rank that dies mid-generation ends the whole job quickly with a clear message: `kill -9` one
# worker rank of a long `tandem generate` (a target TP rank; the draft rank under PEARL; a later
# pipeline stage) and check that mpirun exits non-zero within 5 s, naming the dead rank and the
# signal, and leaves no rank behind.
#
#   rank_death.sh TANDEM_BIN WORK_DIR TESTDATA_DIR
set -uo pipefail
tandem="$1"; work="$2"; testdata="$3"
mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
model="$testdata/models/stories260K.gguf"
draft="$testdata/models/llama2xs-tinystories-280K.gguf"
failures=0

# Plain bash over /proc (no procps needed): children PID, and a process's state letter.
children() {
  local f s
  for f in /proc/[0-9]*/stat; do
    { read -r s <"$f"; } 2>/dev/null || continue
    s=${s##*) }
    set -- $s
    [[ "$2" == "$CHILDREN_OF" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
}
state() {
  local s
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || { echo gone; return; }
  s=${s##*) }
  echo "${s%% *}"
}

# rank_pid MPIRUN_PID RANK: the pid of that rank among mpirun's children (Open MPI sets
# OMPI_COMM_WORLD_RANK in each rank's environment).
rank_pid() {
  local p
  for p in $(CHILDREN_OF="$1" children); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return; fi
  done
}

# kill_case NAME RANKS VICTIM tandem-generate-flags...
kill_case() {
  local name="$1" ranks="$2" victim="$3"; shift 3
  local out="$work/$name.out" err="$work/$name.err" mp pid i t0 t1 ms rc
  mpirun -n "$ranks" --oversubscribe --bind-to none "$tandem" generate --model "$model" --prompt "Once upon a time" \
    --max-tokens 50000 --ctx-size 60000 --ignore-eos "$@" >"$out" 2>"$err" &
  mp=$!
  # Wait until tokens stream (every rank is inside the generation loop), at most 20 s.
  for ((i = 0; i < 200; i++)); do
    [[ $(stat -c %s "$out" 2>/dev/null || echo 0) -gt 200 ]] && break
    sleep 0.1
  done
  pid=$(rank_pid "$mp" "$victim")
  if [[ -z "$pid" ]] || [[ $(stat -c %s "$out") -le 200 ]]; then
    echo "FAIL $name: the job did not start generating (rank $victim pid '${pid}')"; sed 's/^/    /' "$err" | tail -5
    kill -9 "$mp" 2>/dev/null; wait "$mp" 2>/dev/null; failures=$((failures + 1)); return
  fi
  local ranks_pids; ranks_pids=$(CHILDREN_OF="$mp" children)
  t0=$(date +%s%N)
  kill -9 "$pid"
  # mpirun must end the job by itself; give it 15 s before calling it a hang.
  for ((i = 0; i < 150; i++)); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
  t1=$(date +%s%N)
  if kill -0 "$mp" 2>/dev/null; then
    echo "FAIL $name: the job still runs 15 s after rank $victim was killed (hang)"
    kill -9 $ranks_pids "$mp" 2>/dev/null; wait "$mp" 2>/dev/null; failures=$((failures + 1)); return
  fi
  wait "$mp"; rc=$?
  ms=$(((t1 - t0) / 1000000))
  # Ranks left alive (zombies awaiting their reaper do not count), after a grace of 3 s.
  local left=0 p
  for ((i = 0; i < 30; i++)); do
    left=0
    for p in $ranks_pids; do
      case $(state "$p") in gone | Z) ;; *) left=$((left + 1)) ;; esac
    done
    ((left == 0)) && break
    sleep 0.1
  done
  if ((rc == 0)); then
    echo "FAIL $name: mpirun exited 0 after rank $victim was killed"; failures=$((failures + 1))
  elif ((ms >= 5000)); then
    echo "FAIL $name: the job took $ms ms to end (limit 5 s)"; failures=$((failures + 1))
  elif ! grep -Eq "process rank $victim .*exited on signal 9" "$err"; then
    echo "FAIL $name: no message naming rank $victim and signal 9; stderr:"; sed 's/^/    /' "$err" | tail -12
    failures=$((failures + 1))
  elif ((left > 0)); then
    echo "FAIL $name: $left rank(s) left running"; failures=$((failures + 1))
  else
    printf 'ok   %-18s exit %3d %5d ms after the kill: %s\n' "$name" "$rc" "$ms" \
      "$(grep -Eo -m1 "process rank $victim .*exited on signal 9[^.]*" "$err")"
  fi
}

kill_case tp_worker 2 1 --tp 2
kill_case pearl_draft_rank 2 1 --draft "$draft" --draft-tp 1 --speculation pearl
kill_case pp_last_stage 3 2 --pp 3

# The start-up log of those jobs says which model each rank loaded.
for want in "tp_worker.err:\[rank 1 on [^]]*\] \[info\] loading target layers \[0, 5\) tp 1/2" \
            "pearl_draft_rank.err:\[rank 0 on [^]]*\] \[info\] loading target layers \[0, 5\) tp 0/1" \
            "pearl_draft_rank.err:\[rank 1 on [^]]*\] \[info\] loading draft layers \[0, 5\) tp 0/1" \
            "pp_last_stage.err:\[rank 2 on [^]]*\] \[info\] loading target layers \[4, 5\) tp 0/1"; do
  if ! grep -Eq "${want#*:}" "$work/${want%%:*}"; then
    echo "FAIL start-up log: no line matching /${want#*:}/ in ${want%%:*}"; grep "loading" "$work/${want%%:*}" | sed 's/^/    /'
    failures=$((failures + 1))
  fi
done

if ((failures)); then echo "$failures case(s) failed"; exit 1; fi
echo "every killed rank ended its job quickly and clearly"
