#!/usr/bin/env bash
# Builds the FUSE decoder fuzzer (server_fuzzer.cc) with clang's libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, outside Bazel, and runs
# it for SECONDS (default 60). The build and run recipe is shared by every
# fuzz target: tests/fuzz/fuzz_lib.sh (scripts/fuzz.sh runs them all).
#
#   agent/fuse/run_fuzz.sh [SECONDS]
#
# The seeds in agent/fuse/fuzz_corpus/ are read but never written: new
# inputs go to $FUZZ_WORK/fuse_server.corpus (default work dir
# /tmp/coherefs_fuse_fuzz), crashes to $FUZZ_WORK/fuse_server-crash-*. To
# keep an interesting input, copy it into fuzz_corpus/ so
# server_fuzz_corpus_test replays it under `bazel test`.
set -euo pipefail
seconds="${1:-60}"
FUZZ_REPO="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../../tests/fuzz/fuzz_lib.sh
. "$FUZZ_REPO/tests/fuzz/fuzz_lib.sh"
fuzz_build_and_run "${FUZZ_WORK:-/tmp/coherefs_fuse_fuzz}" \
  "-max_total_time=$seconds" fuse_server
