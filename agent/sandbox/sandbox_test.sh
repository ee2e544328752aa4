#!/usr/bin/env bash
# Bazel entry point of //agent/sandbox:sandbox_test (sandbox_test.py).
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}"
exec /usr/bin/python3 "$here/agent/sandbox/sandbox_test.py" "$here/$1" "$here/$2"
