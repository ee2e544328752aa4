#!/usr/bin/env bash
# The coordinator benchmark: coherefs-coordinator vs etcd, side by side.
#
#   bench/coordinator/run.sh [bump_bench flags...]
#
# Builds //bench/coordinator:bump_bench and //server:coherefs-coordinator,
# runs them (both servers on loopback, temporary data dirs under $TMPDIR or
# /tmp, removed at the end), and writes into bench/results/:
#   coordinator-<UTC date>.json   every sample, the summary, machine notes
#   coordinator-<UTC date>.csv    every sample
#   coordinator-<UTC date>.txt    the printed table
#   coordinator.png               the plot of this run
# Flags go to bump_bench (e.g. --rounds=3 --throughput_seconds=5
# --systems=etcd); see bench/README.md. BAZEL_OUTPUT_BASE, if set, is passed
# to bazel as --output_base. BENCH_NICE, if set (e.g. -10, needs root), runs
# the benchmark and both servers at that nice level, so background work on a
# shared machine disturbs them less (both systems alike).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
results="$repo/bench/results"
mkdir -p "$results"

bazel_startup=()
if [ -n "${BAZEL_OUTPUT_BASE:-}" ]; then
  bazel_startup+=("--output_base=$BAZEL_OUTPUT_BASE")
fi

if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  echo "run.sh: installing matplotlib (scripts/install-bench-deps.sh)" >&2
  "$repo/scripts/install-bench-deps.sh"
fi

targets=(//bench/coordinator:bump_bench)
want_coherefs=1
for arg in "$@"; do
  case "$arg" in
    --systems=*) [[ "${arg#--systems=}" == *coherefs* ]] || want_coherefs=0 ;;
  esac
done
if [ "$want_coherefs" = 1 ]; then
  targets+=(//server:coherefs-coordinator)
fi

bazel "${bazel_startup[@]}" build --symlink_prefix=/ "${targets[@]}"
bin="$(bazel "${bazel_startup[@]}" info bazel-bin 2>/dev/null)"

work="$(mktemp -d "${TMPDIR:-/tmp}/coherefs-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
base="$results/coordinator-$stamp"
runner=()
if [ -n "${BENCH_NICE:-}" ]; then
  runner=(nice -n "$BENCH_NICE")
fi
set +e
"${runner[@]}" "$bin/bench/coordinator/bump_bench" \
  --coordinator_bin="$bin/server/coherefs-coordinator" \
  --work_dir="$work" \
  --out_json="$base.json" \
  --out_csv="$base.csv" \
  "$@" | tee "$base.txt"
rc=${PIPESTATUS[0]}
set -e

if [ -s "$base.json" ]; then
  /usr/bin/python3 "$repo/bench/coordinator/plot.py" "$base.json" "$results/coordinator.png"
  echo "run.sh: wrote $base.{json,csv,txt} and $results/coordinator.png"
fi
exit "$rc"
