#!/usr/bin/env bash
# The fault suite, long form (issue 6): builds what it needs, then runs
#   - the coordinator kill loop with --kills N (default 100), and 10 kills
#     with stream faults armed,
#   - the slow-subscriber, disk-full and corrupt-store scenarios,
#   - every tests/faults/agent/*_fault_test.* script with --long, and the
#     agent worker crash test with 20 kills,
# each printing its own "N passed, N failed"; ends with the totals and exits
# non-zero if anything failed. Needs root (tmpfs mounts, FUSE, netns).
#
#   tests/faults/run.sh [--kills N] [--seed S]
#
# Bazel: $BAZEL (default bazel) with $BAZEL_STARTUP_FLAGS (e.g.
# "--output_base=/root/.cache/bazel-x") if set.
set -uo pipefail
cd "$(dirname "$0")/../.."
kills=100
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills="$2"; shift 2 ;;
    --kills=*) kills="${1#*=}"; shift ;;
    --seed) seed="$2"; shift 2 ;;
    --seed=*) seed="${1#*=}"; shift ;;
    *) echo "usage: tests/faults/run.sh [--kills N] [--seed S]" >&2; exit 2 ;;
  esac
done
bazel=(${BAZEL:-bazel} ${BAZEL_STARTUP_FLAGS:-})
targets=(//server:coherefs-coordinator //agent:coherefs-agent
         //client:coherectl //tests/faults:bump_storm)
"${bazel[@]}" build --symlink_prefix=/ "${targets[@]}" || exit 1
bin="$("${bazel[@]}" info --symlink_prefix=/ bazel-bin 2>/dev/null)"
coord="$bin/server/coherefs-coordinator"
agent="$bin/agent/coherefs-agent"
ctl="$bin/client/coherectl"
storm="$bin/tests/faults/bump_storm"
export COHEREFS_AGENT_BIN="$agent" COHEREFS_COORDINATOR_BIN="$coord" \
  COHEREFS_COHERECTL_BIN="$ctl"

passed=0 failed=0 scripts_failed=0
run() {  # run NAME COMMAND...: adds the script's counts to the totals
  echo "=== $1"
  shift
  local log rc last
  log="$(mktemp)"
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  last="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)"
  rm -f "$log"
  if [ -n "$last" ]; then
    passed=$((passed + $(echo "$last" | cut -d' ' -f1)))
    failed=$((failed + $(echo "$last" | cut -d' ' -f3)))
  fi
  if [ "$rc" -ne 0 ] || [ -z "$last" ]; then
    scripts_failed=$((scripts_failed + 1))
    [ -z "$last" ] && failed=$((failed + 1))
  fi
}

here=tests/faults
run "kill loop ($kills kills)" /usr/bin/python3 "$here/kill_loop_test.py" \
  --kills="$kills" --seed="$seed" --coordinator-bin="$coord" \
  --agent-bin="$agent" --storm-bin="$storm" --ctl-bin="$ctl"
run "kill loop with stream faults (10 kills)" /usr/bin/python3 \
  "$here/kill_loop_test.py" --kills=10 --stream-faults --seed="$seed" \
  --coordinator-bin="$coord" --agent-bin="$agent" --storm-bin="$storm" \
  --ctl-bin="$ctl"
run "slow subscriber" /usr/bin/python3 "$here/slow_subscriber_test.py" \
  --coordinator-bin="$coord" --storm-bin="$storm" --stall-ms=15000
run "disk full" /usr/bin/python3 "$here/disk_full_test.py" \
  --coordinator-bin="$coord" --storm-bin="$storm"
run "corrupt store" /usr/bin/python3 "$here/corrupt_store_test.py" \
  --coordinator-bin="$coord" --storm-bin="$storm"
run "worker_crash_test.py --kills 20" /usr/bin/python3 "$here/agent/worker_crash_test.py" \
  --kills 20 --seed "$seed"
for script in "$here"/agent/*_fault_test.*; do
  [ -e "$script" ] || continue
  case "$script" in
    *.py) run "$(basename "$script") --long" /usr/bin/python3 "$script" --long ;;
    *) run "$(basename "$script") --long" "$script" --long ;;
  esac
done
echo "=== fault suite: $scripts_failed script(s) failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$scripts_failed" -eq 0 ]
