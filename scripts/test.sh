#!/usr/bin/env bash
# The test command: installs what coherefs needs (Debian packages only, plus
# the guest kernel package for the VM tests), builds everything and runs
# every test with `bazel test //...`, then prints the counts.
#
#   scripts/test.sh                 # everything in the default run
#   scripts/test.sh //server/...    # a subset (any bazel target patterns)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/fetch-guest-kernel.sh tests/vm/.cache

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(//...)

set +e
bazel test --keep_going "${targets[@]}" 2>&1 | tee /tmp/coherefs-test.log
bazel_rc=${PIPESTATUS[0]}
set -e

python3 scripts/count_tests.py "$(bazel info bazel-testlogs 2>/dev/null)" /tmp/coherefs-test.log
exit "$bazel_rc"
