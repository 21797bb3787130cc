#!/usr/bin/env bash
# Installs the Debian packages ringstore needs to build, test and benchmark.
# Idempotent: when every package is present it prints nothing and exits 0.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config
  # libraries
  libboost-dev libboost-system-dev librocksdb-dev libssl-dev libmsgpack-cxx-dev
  libfuse3-dev fuse3 libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libcli11-dev libxxhash-dev libjemalloc-dev
  # tests and benchmarks
  redis-server redis-tools fio iperf3 nbdkit libnbd-bin python3-libnbd qemu-utils
  e2fsprogs util-linux iproute2 iptables procps psmisc python3
  # filesystem tests and benchmarks (real programs on a mount)
  git attr dbench bonnie++
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
