#!/usr/bin/env bash
# Installs what tandem needs to build and test on Debian 12 (as root; uses sudo otherwise): Debian
# packages, then the pinned npm test packages (tests/js, from its committed lockfile).
# Skips apt entirely when every package is already present, so re-running is instant.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential cmake ninja-build pkg-config git python3 curl openssl ca-certificates
      openmpi-bin libopenmpi-dev libopenblas-dev
      libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libssl-dev
      libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libpcre2-dev libcpp-httplib-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      iproute2 procps python3-jinja2 python3-matplotlib)
# Node.js for the reference tokenizers, template renderer and the openai client of the tests:
# the machine's own when it has one (Debian's otherwise).
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
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
# npm ci only when the lockfile changed since the last install (it wipes node_modules each time).
if ! cmp -s tests/js/package-lock.json tests/js/node_modules/.tandem-installed-lock 2>/dev/null; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.tandem-installed-lock)
fi
