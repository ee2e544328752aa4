#!/usr/bin/env bash
# Issue 4's benchmark: coherefs strict / bounded vs virtiofsd cache=always,
# auto and none, two TCG guests per mode, in one run (see
# bench/coherence/coherence_bench.py and bench/README.md).
#
#   bench/coherence/run.sh [coherence_bench.py flags...]   # ~15-20 min
#   bench/coherence/run.sh --reps=5 --warm-passes=6
#   bench/coherence/run.sh --modes=coherefs-strict,virtiofsd-always --no-table
#   BAZEL_OUTPUT_BASE=/root/.cache/bazel-me bench/coherence/run.sh
#
# Builds //agent:coherefs-agent and //server:coherefs-coordinator (skipped
# when both --agent-bin= and --coordinator-bin= are given), installs Debian's
# python3-matplotlib if missing (scripts/install-bench-deps.sh), runs
# bench/table/run.sh first (table load vs GETATTR; --no-table skips it) and
# then the guests, and writes into bench/results/:
#   coherence-<UTC>.txt    the printed tables, ratios and target verdicts
#   coherence-<UTC>.json   machine notes, every sample, summaries, metrics
#   coherence-<UTC>.csv    every figure, one per line
#   coherence-<UTC>.png    the plot (bench/coherence/plot.py)
# (bench/table/run.sh also leaves its own table-<UTC>.json.)
# Needs root: QEMU guests, virtiofsd, drop_caches in the guests, /dev/fuse.
set -euo pipefail

# shellcheck source=bench/preamble.sh
source "$(dirname "${BASH_SOURCE[0]}")/../preamble.sh"

run_table=1
have_agent=0
have_coordinator=0
bench_args=()
for arg in "$@"; do
  case "$arg" in
    --no-table) run_table=0; continue ;;
    --agent-bin=*) have_agent=1 ;;
    --coordinator-bin=*) have_coordinator=1 ;;
  esac
  bench_args+=("$arg")
done

bazel_startup=()
if [ -n "${BAZEL_OUTPUT_BASE:-}" ]; then
  bazel_startup+=("--output_base=$BAZEL_OUTPUT_BASE")
fi
bin_args=()
if [ "$have_agent" = 0 ] || [ "$have_coordinator" = 0 ]; then
  bazel "${bazel_startup[@]}" build --symlink_prefix=/ \
    //agent:coherefs-agent //server:coherefs-coordinator
  bin="$(bazel "${bazel_startup[@]}" info bazel-bin 2>/dev/null)"
  [ "$have_agent" = 1 ] || bin_args+=("--agent-bin=$bin/agent/coherefs-agent")
  [ "$have_coordinator" = 1 ] ||
    bin_args+=("--coordinator-bin=$bin/server/coherefs-coordinator")
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
base="$results/coherence-$stamp"
start=$(date +%s)

table_args=()
if [ "$run_table" = 1 ]; then
  echo "run.sh: bench/table/run.sh (table load vs GETATTR round trip)"
  set +e
  table_out="$("$repo/bench/table/run.sh" 2>&1)"
  table_rc=$?
  set -e
  table_json="$(printf '%s\n' "$table_out" | sed -n 's/^wrote //p' | tail -1)"
  if [ "$table_rc" = 0 ] && [ -n "$table_json" ] && [ -s "$table_json" ]; then
    table_args+=("--table-json=$table_json")
    echo "run.sh: table figures from $table_json"
  else
    echo "run.sh: bench/table/run.sh failed ($table_rc); continuing without:" >&2
    printf '%s\n' "$table_out" | tail -20 >&2
  fi
fi

set +e
/usr/bin/python3 "$repo/bench/coherence/coherence_bench.py" \
  "${bin_args[@]}" "${table_args[@]}" \
  --out-json="$base.json" --out-csv="$base.csv" "${bench_args[@]}" |
  tee "$base.txt"
rc=${PIPESTATUS[0]}
set -e
echo "run.sh: total $(($(date +%s) - start)) s (table + guests)" | tee -a "$base.txt"

if [ -s "$base.json" ]; then
  /usr/bin/python3 "$repo/bench/coherence/plot.py" "$base.json" "$base.png"
  echo "run.sh: wrote $base.{txt,json,csv,png}"
fi
exit "$rc"
