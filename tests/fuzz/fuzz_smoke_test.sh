#!/usr/bin/env bash
# Builds each fuzz target with clang (libFuzzer, ASan, UBSan) from the
# source tree and runs it for FUZZ_SECONDS (default 15) from its seed corpus.
# Any crash, leak or sanitizer report makes the fuzzer exit non-zero, and
# this test fail.
set -euo pipefail
seconds="${FUZZ_SECONDS:-15}"
# The scripts find the sources relative to themselves: use the real tree.
script="$(readlink -f "${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/agent/fuse/run_fuzz.sh")"
repo="$(cd "$(dirname "$script")/../.." && pwd)"
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
run() {
  local name="$1"; shift
  if FUZZ_WORK="$work/$name" "$@" >"$work/$name.log" 2>&1; then
    echo "PASS $name: $(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | awk '{s+=$2} END {print s+0}') executions"
    passed=$((passed + 1))
  else
    echo "FAIL $name:"; tail -40 "$work/$name.log"
    failed=$((failed + 1))
  fi
}
run fuse_server "$repo/agent/fuse/run_fuzz.sh" "$seconds"
run vhost_user "$repo/agent/vhost_user/run_fuzz.sh" "$seconds"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
