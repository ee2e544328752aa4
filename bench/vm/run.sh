#!/usr/bin/env bash
# The in-guest data-path benchmark: coherefs-agent vs virtiofsd, side by side.
#
#   bench/vm/run.sh [bench.py flags...]      # default: 4 rounds, ~12-15 min
#   bench/vm/run.sh --rounds=5 --caches=none
#   bench/vm/run.sh --stand-in               # virtiofsd vs virtiofsd (A/A)
#
# Builds //agent:coherefs-agent (skipped with --stand-in or --agent-bin=),
# installs Debian's python3-matplotlib if missing
# (scripts/install-bench-deps.sh, root), fetches the guest kernel if needed,
# runs bench/vm/bench.py (root: QEMU guests + virtiofsd) and writes into
# bench/results/:
#   vm-<UTC date>.json   machine notes, every sample, the summary
#   vm-<UTC date>.csv    every sample
#   vm-<UTC date>.txt    the printed tables
#   vm.png               the plot of this run
# BAZEL_OUTPUT_BASE, if set, is passed to bazel as --output_base.
set -euo pipefail

# shellcheck source=bench/preamble.sh
source "$(dirname "${BASH_SOURCE[0]}")/../preamble.sh"

build_agent=1
for arg in "$@"; do
  case "$arg" in
    --stand-in | --agent-bin=*) build_agent=0 ;;
  esac
done
agent_args=()
if [ "$build_agent" = 1 ]; then
  bazel_startup=()
  if [ -n "${BAZEL_OUTPUT_BASE:-}" ]; then
    bazel_startup+=("--output_base=$BAZEL_OUTPUT_BASE")
  fi
  bazel "${bazel_startup[@]}" build --symlink_prefix=/ //agent:coherefs-agent
  bin="$(bazel "${bazel_startup[@]}" info bazel-bin 2>/dev/null)"
  agent_args+=("--agent-bin=$bin/agent/coherefs-agent")
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
base="$results/vm-$stamp"
set +e
/usr/bin/python3 "$repo/bench/vm/bench.py" "${agent_args[@]}" \
  --out-json="$base.json" --out-csv="$base.csv" "$@" | tee "$base.txt"
rc=${PIPESTATUS[0]}
set -e

if [ -s "$base.json" ]; then
  /usr/bin/python3 "$repo/bench/vm/plot.py" "$base.json" "$results/vm.png"
  echo "run.sh: wrote $base.{json,csv,txt} and $results/vm.png"
fi
exit "$rc"
