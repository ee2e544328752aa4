#!/usr/bin/env bash
# Fuzzes the vhost-user message parser and the virtqueue chain walker with
# libFuzzer + ASan/UBSan (clang from scripts/install-deps.sh), SECONDS
# (default 60) each, with the shared recipe of tests/fuzz/fuzz_lib.sh.
# Seeds come from fuzz_corpus/ (messages) and vring_fuzz_corpus/ (rings)
# and are not modified; new inputs go to scratch corpora under the work dir
# ($FUZZ_WORK, default a new temp dir). A crash leaves its input there and
# makes this script exit non-zero.
#   agent/vhost_user/run_fuzz.sh 60
set -euo pipefail
seconds="${1:-60}"
FUZZ_REPO="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=../../tests/fuzz/fuzz_lib.sh
. "$FUZZ_REPO/tests/fuzz/fuzz_lib.sh"
fuzz_build_and_run "${FUZZ_WORK:-$(mktemp -d /tmp/vhost-fuzz.XXXXXX)}" \
  "-max_total_time=$seconds" vhost_message vhost_vring
