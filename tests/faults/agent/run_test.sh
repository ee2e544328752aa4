#!/usr/bin/env bash
# Bazel entry point of the agent fault tests: runs a Python file of this
# package with /usr/bin/python3 (Bazel 4's py_test wants a `python`).
#   run_test.sh SCRIPT.py [ARGS...]
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/faults/agent"
script="$1"
shift
exec /usr/bin/python3 "$here/$script" "$@"
