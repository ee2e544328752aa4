#!/usr/bin/env bash
# Builds every fuzz target with clang (libFuzzer, ASan, UBSan) from the
# source tree, with the shared recipe of tests/fuzz/fuzz_lib.sh, and runs
# each for FUZZ_SECONDS (default 15) from its seed corpus, two at a time.
# Any crash, leak, sanitizer report or broken invariant makes that fuzzer
# exit non-zero, and this test fail. The long run is scripts/fuzz.sh.
set -euo pipefail
seconds="${FUZZ_SECONDS:-15}"
# The library finds the sources relative to itself: use the real tree.
lib="$(readlink -f "${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/fuzz/fuzz_lib.sh")"
FUZZ_REPO="$(cd "$(dirname "$lib")/../.." && pwd)"
# shellcheck source=fuzz_lib.sh
. "$lib"
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086
FUZZ_PARALLEL=2 fuzz_build_and_run "$work" "-max_total_time=$seconds" $FUZZ_TARGETS
