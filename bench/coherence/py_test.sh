#!/usr/bin/env bash
# Bazel entry point of this package's Python tests: runs one of them with
# /usr/bin/python3 (Bazel 4's py_test wants a `python` Debian lacks).
#   py_test.sh SCRIPT.py [ARGS...]
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/bench/coherence"
script="$1"
shift
exec /usr/bin/python3 "$here/$script" "$@"
