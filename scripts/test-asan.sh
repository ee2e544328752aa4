#!/usr/bin/env bash
# Builds the test suite once with AddressSanitizer + UndefinedBehaviorSanitizer
# (`bazel --config=asan`, see .bazelrc; leak checks on) in a Bazel output
# base of its own, so it does not evict the default build, and runs it.
# Any sanitizer report fails the test that printed it (UBSan halts on the
# first report). Ends with "N passed, N failed".
#
#   scripts/test-asan.sh [TARGET_PATTERN...]      (default //...)
#
# Left out unless COHEREFS_ASAN_ALL=1, for time only:
#   - tests that boot QEMU TCG guests (tests/vm, the *_vm_* coherence tests,
#     the agent-restart fault test, the coherence bench smoke test): minutes
#     each without ASan; the guests' kernel and QEMU are not instrumented,
#     and the agent code they drive runs instrumented in the host-mount
#     tests that stay in;
#   - //tests/fuzz:fuzz_smoke_test: it builds its own ASan+UBSan binaries
#     with clang (scripts/fuzz.sh is the long run).
# Left out always, since they cannot be built with ASan: tests of the
# statically linked guest tool (//client:coherefs-table-static; gcc refuses
# -static with -fsanitize=address): //client:coherefs_table_tool_test and
# //client:coherefs_table_slot_test; and //deploy:container_libs_test,
# which checks that the container installs every shared library the
# release binaries load (ASan builds also load libasan and libubsan).
# Environment: COHEREFS_ASAN_OUTPUT_BASE (default ~/.cache/bazel-asan).
set -uo pipefail
cd "$(dirname "$0")/.."
out_base="${COHEREFS_ASAN_OUTPUT_BASE:-$HOME/.cache/bazel-asan}"
bazel=(bazel --output_base="$out_base")
patterns=("${@:-//...}")
exclude='^//tests/vm:(vm_|guest_evict)|^//tests/coherence:.*_vm_|^//tests/coherence:.*vm_test$|^//tests/faults/agent:agent_restart_fault_test$|^//bench/coherence:smoke_test$|^//tests/fuzz:fuzz_smoke_test$'
[ "${COHEREFS_ASAN_ALL:-0}" = 1 ] && exclude='^$'
exclude="$exclude|^//client:coherefs_table_(tool|slot)_test\$|^//deploy:container_libs_test\$"

query="tests($(printf '%s + ' "${patterns[@]}" | sed 's/ + $//'))"
mapfile -t all < <("${bazel[@]}" query "$query" 2>/dev/null | sort)
if [ "${#all[@]}" -eq 0 ]; then
  echo "test-asan: no tests match ${patterns[*]}" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
mapfile -t targets < <(printf '%s\n' "${all[@]}" | grep -v -E "$exclude")
skipped=$((${#all[@]} - ${#targets[@]}))
echo "test-asan: ${#targets[@]} test targets (${skipped} left out)"
printf '%s\n' "${all[@]}" | grep -E "$exclude" | sed 's/^/  left out: /'

log="$(mktemp /tmp/coherefs-test-asan.XXXXXX.log)"
start=$(date +%s)
"${bazel[@]}" test --config=asan --symlink_prefix=/ --keep_going \
  --test_env=ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_odr_violation=0 \
  --test_env=UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  --test_env=LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp" \
  --test_env=COHEREFS_SANITIZED=1 \
  --test_output=errors "${targets[@]}" 2>&1 | tee "$log"
echo "test-asan: bazel finished in $(($(date +%s) - start)) s; log $log"

# One summary line per target: "//pkg:name  PASSED in 1.2s", FAILED, ...
passed=$(grep -c -E '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -c -E '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$log")
# Targets that never got a summary line (e.g. the build failed) count as failed.
missing=$((${#targets[@]} - passed - failed))
[ "$missing" -gt 0 ] && failed=$((failed + missing))
grep -E '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD)' "$log" | sed 's/^/  not passed: /'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
