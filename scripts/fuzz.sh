#!/usr/bin/env bash
# The fuzz command: builds every libFuzzer target once with clang
# (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer, leak checks
# on) and runs each for EXECUTIONS executions (default 1000000, libFuzzer's
# -runs), from its seed corpus in the repository:
#   fuse_server          FUSE request decoder (agent/fuse)
#   vhost_message        vhost-user message parser (agent/vhost_user)
#   vhost_vring          virtqueue descriptor-chain walker (agent/vhost_user)
#   coordinator          coordinator requests over the memory store (server)
#   coordinator_rocksdb  the same over a real RocksDB (server)
# Prints "PASS name: N executions in S s" per target, then
# "N passed, N failed"; exits non-zero on any crash, leak, sanitizer report,
# timeout or broken invariant (the input is kept in the work dir).
#
#   scripts/fuzz.sh [EXECUTIONS] [TARGET...]
#
# Environment: FUZZ_WORK (work dir, default a new one under /var/tmp; new
# corpus entries and crash inputs are left there), FUZZ_PARALLEL (targets
# run at once, default 1), CXX_FUZZ (clang++). Short runs of the same
# targets are part of the default test run (//tests/fuzz:fuzz_smoke_test).
set -euo pipefail
runs="${1:-1000000}"
[ "$#" -gt 0 ] && shift
FUZZ_REPO="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../tests/fuzz/fuzz_lib.sh
. "$FUZZ_REPO/tests/fuzz/fuzz_lib.sh"
# shellcheck disable=SC2206
targets=(${*:-$FUZZ_TARGETS})
work="${FUZZ_WORK:-$(mktemp -d /var/tmp/coherefs-fuzz.XXXXXX)}"
# RocksDB on tmpfs when there is one: the fuzzer commits (fsyncs) a lot.
if [ -z "${COHEREFS_FUZZ_DB_DIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  COHEREFS_FUZZ_DB_DIR="$(mktemp -d /dev/shm/coherefs-fuzz-db.XXXXXX)"
  export COHEREFS_FUZZ_DB_DIR
  trap 'rm -rf "$COHEREFS_FUZZ_DB_DIR"' EXIT
fi
echo "fuzz: ${targets[*]}: $runs executions each; work dir $work"
start=$(date +%s)
rc=0
fuzz_build_and_run "$work" "-runs=$runs" "${targets[@]}" || rc=$?
echo "fuzz: done in $(($(date +%s) - start)) s"
exit "$rc"
