#!/usr/bin/env bash
# tandem-mpirun's binding decision (--dry-run: nothing is launched): ranks bound per core only when
# a hostfile names distinct machines; never when two entries are one machine, when every entry is
# this machine, when the environment sets Open MPI's binding policy (tandem-hosts run), or without
# a hostfile; --bind core|none overrides. With root and network namespaces, an address inside a
# namespace here (an emulated host) is also recognised as this machine.
#   tests/launch/mpirun_binding.sh PATH/TO/tandem-mpirun
set -uo pipefail
M=${1:?tandem-mpirun}
W=$(mktemp -d)
trap 'rm -rf "$W"; [[ -n "${NS:-}" ]] && ip netns del "$NS" 2>/dev/null' EXIT
failures=0
expect() {  # NAME WANT(core|none) REASON-SUBSTRING -- ARGS… : runs the dry run, checks its decision
  local name=$1 want=$2 why=$3; shift 4
  local out
  out=$(env -u OMPI_MCA_hwloc_base_binding_policy TANDEM_BIN=/bin/true "${ENVPRE[@]}" bash "$M" --dry-run "$@" generate --model x --tp 2 --threads 2 2>&1)
  local line=$(grep '^tandem-mpirun: binding' <<<"$out")
  local cmd=$(grep '^tandem-mpirun: mpirun' <<<"$out")
  local ok=1
  [[ "$line" == "tandem-mpirun: binding $want:"* ]] || ok=0
  [[ "$line" == *"$why"* ]] || ok=0
  if [[ $want == core ]]; then [[ "$cmd" == *"--map-by slot:PE=2 --bind-to core"* ]] || ok=0
  else [[ "$cmd" == *"--bind-to none"* && "$cmd" != *"--bind-to core"* ]] || ok=0; fi
  if ((ok)); then echo "ok   $name: $line"; else echo "FAIL $name:"; sed 's/^/    /' <<<"$out"; failures=$((failures + 1)); fi
}
ENVPRE=()
printf '# two machines of their own (documentation addresses, never this machine)\n192.0.2.101 slots=1\n192.0.2.102 slots=1\n' >"$W/distinct"
printf 'localhost slots=1\n127.0.0.1 slots=1\n' >"$W/same"
printf '192.0.2.101 slots=1\n192.0.2.101 slots=1\n' >"$W/dup"
printf 'localhost slots=2\n' >"$W/local"
# 192.0.2.2 may be this machine's own address; pick a TEST-NET-1 address nobody here has.
expect "distinct hosts" core "2 distinct hosts" -- --hostfile "$W/distinct"
expect "one machine twice" none "one machine" -- --hostfile "$W/same"
expect "one address listed twice (one line per slot)" core "1 distinct hosts" -- --hostfile "$W/dup"
expect "only this machine" none "only this machine" -- --hostfile "$W/local"
expect "no hostfile" none "one host" --
expect "forced none" none "--bind none" -- --bind none --hostfile "$W/distinct"
expect "forced core" core "--bind core" -- --bind core --hostfile "$W/same"
ENVPRE=(OMPI_MCA_hwloc_base_binding_policy=none)
expect "policy from the environment" none "from the environment" -- --hostfile "$W/distinct"
ENVPRE=()
own=$(ip -o -4 addr show 2>/dev/null | awk '$2 != "lo" { split($4, a, "/"); print a[1]; exit }')
if [[ -n "$own" ]]; then
  printf '%s slots=1\n127.0.0.1 slots=1\n' "$own" >"$W/own"
  expect "this machine's address and loopback" none "this machine" -- --hostfile "$W/own"
fi
# An emulated host: an address inside a network namespace of this machine.
if [[ "$(id -u)" == 0 ]] && NS="tmb$$" && ip netns add "$NS" 2>/dev/null; then
  ip -n "$NS" link set lo up && ip -n "$NS" addr add 192.0.2.201/32 dev lo
  printf '192.0.2.201 slots=1\n192.0.2.101 slots=1\n' >"$W/ns"
  expect "address of a namespace here" none "network namespace $NS" -- --hostfile "$W/ns"
else
  NS=""
  echo "skip namespace case: cannot create network namespaces here"
fi
((failures == 0)) || { echo "$failures binding case(s) failed"; exit 1; }
echo "all binding cases pass"
