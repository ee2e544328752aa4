#!/usr/bin/env bash
# Bazel entry point of //tests/vm:guest_evict_test (guest_evict_test.py).
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/vm"
exec /usr/bin/python3 "$here/guest_evict_test.py" "$@"
