#!/usr/bin/env bash
# Bazel entry point of tls_test.py (Bazel 4's py_test wants a `python`; run
# Debian's python3 directly).
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}"
exec /usr/bin/python3 "$here/tests/security/tls_test.py" "$@"
