#!/usr/bin/env bash
# Bazel entry point of //tests/coherence:table_vm_test (see table_vm_test.py).
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/coherence"
exec /usr/bin/python3 "$here/table_vm_test.py" "$@"
