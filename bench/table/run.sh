#!/usr/bin/env bash
# Issue 4 micro-benchmark: version check through the table vs a FUSE
# GETATTR round trip to coherefs-agent on a host mount (needs root and
# /dev/fuse). Writes bench/results/table-<UTC>.json.
#
#   bench/table/run.sh [table_bench flags, e.g. --repeats=9]
#   BAZEL_OUTPUT_BASE=/root/.cache/bazel-me bench/table/run.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
bazel_args=()
if [ -n "${BAZEL_OUTPUT_BASE:-}" ]; then bazel_args=(--output_base="$BAZEL_OUTPUT_BASE"); fi
bazel "${bazel_args[@]}" build --symlink_prefix=/ //bench/table:table_bench //agent:coherefs-agent
bin="$(bazel "${bazel_args[@]}" info bazel-bin 2>/dev/null)"

work="$(mktemp -d /tmp/tablebench.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if mountpoint -q "$work/mnt"; then umount -l "$work/mnt" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/shared" "$work/mnt"
echo data >"$work/shared/file"
# cache=none: no attribute caching in the kernel either way; the bench also
# forces a GETATTR per call with AT_STATX_FORCE_SYNC.
"$bin/agent/coherefs-agent" --shared-dir="$work/shared" --host-mount="$work/mnt" \
  --cache=none --log-level=warn 2>"$work/agent.log" &
pid=$!
for _ in $(seq 100); do
  mountpoint -q "$work/mnt" && break
  sleep 0.1
done
if ! mountpoint -q "$work/mnt"; then
  echo "agent did not mount $work/mnt:"; cat "$work/agent.log"; exit 1
fi

mkdir -p bench/results
out="bench/results/table-$(date -u +%Y%m%dT%H%M%SZ).json"
"$bin/bench/table/table_bench" --fuse-file="$work/mnt/file" --json="$out" "$@"
echo "wrote $out"
