#!/usr/bin/env bash
# Installs everything coherefs needs to build, run and test, from Debian's
# packages only. Safe to run again; it installs what is missing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get needs it)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq

pkgs=(
  # build
  bazel-bootstrap g++ pkg-config clang libclang-rt-14-dev
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev librocksdb-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libfuse3-dev libseccomp-dev libssl-dev
  # run and test
  fuse3 attr python3 iproute2 procps util-linux openssl
  # VM end-to-end tests: QEMU, C virtiofsd (qemu-system-common), busybox
  qemu-system-x86 qemu-system-common busybox-static xz-utils cpio
  # benchmark peer
  etcd-server etcd-client
  # observability test: prometheus + promtool; PyYAML for the test script
  prometheus python3-yaml
)
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null

# Kubernetes manifest test (deploy/k8s): kustomize and the Kubernetes API
# schema validators from npm, pinned by the committed package-lock.json.
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
(cd "$repo_root/deploy/k8s" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
echo "install-deps: done"
