#!/usr/bin/env bash
# Runs one Python test file under `bazel test` with Debian's /usr/bin/python3
# (Bazel 4's autodetected Python toolchain looks for a `python` that Debian
# does not have). Usage: run_py_test.sh path/to/foo_test.py
set -euo pipefail
exec /usr/bin/python3 "${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/$1"
