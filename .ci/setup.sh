#!/usr/bin/env bash
# Installs what tandem needs to build and run on Debian 12 (as root; uses sudo otherwise).
# Skips apt entirely when every package is already present, so re-running is instant.
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config git python3
      openmpi-bin libopenmpi-dev libopenblas-dev
      libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
      libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libpcre2-dev
      libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
