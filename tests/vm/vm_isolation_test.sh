#!/usr/bin/env bash
# Bazel entry point of //tests/vm:vm_isolation_test (isolation_test.py).
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/vm"
exec /usr/bin/python3 "$here/isolation_test.py" "$@"
