#!/usr/bin/env bash
# Bazel entry point: runs prometheus_test.py with /usr/bin/python3 (Bazel
# 4's py_test wants a `python`).
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/observability"
exec /usr/bin/python3 "$here/prometheus_test.py" "$@"
