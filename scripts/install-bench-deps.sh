#!/usr/bin/env bash
# Installs what the benchmarks under bench/ need beyond scripts/install-deps.sh
# (which already brings the peers: etcd-server, QEMU's virtiofsd): Debian's
# matplotlib for the plots. Safe to run again.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-bench-deps: run as root (apt-get needs it)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
pkgs=(
  # plots of benchmark results (bench/*/plot.py, run with /usr/bin/python3)
  python3-matplotlib
)
if ! dpkg -s "${pkgs[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
echo "install-bench-deps: done"
