#!/usr/bin/env bash
# Fuzzes the coordinator's request handling (coordinator_fuzz_harness.h)
# with libFuzzer + ASan/UBSan for SECONDS (default 60) per target: over the
# memory store and over a real RocksDB (its databases go to
# $COHEREFS_FUZZ_DB_DIR, default the work dir; /dev/shm is faster). Shared
# recipe: tests/fuzz/fuzz_lib.sh. Seeds in server/fuzz_corpus/ are read,
# never written; new inputs and crashes go to $FUZZ_WORK (default a new
# temp dir). Copy an input worth keeping into fuzz_corpus/ so
# coordinator_fuzz_corpus_test replays it under `bazel test`.
#   server/run_fuzz.sh [SECONDS]
set -euo pipefail
seconds="${1:-60}"
FUZZ_REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../tests/fuzz/fuzz_lib.sh
. "$FUZZ_REPO/tests/fuzz/fuzz_lib.sh"
fuzz_build_and_run "${FUZZ_WORK:-$(mktemp -d /tmp/coordinator-fuzz.XXXXXX)}" \
  "-max_total_time=$seconds" coordinator coordinator_rocksdb
