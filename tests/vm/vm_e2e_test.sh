#!/usr/bin/env bash
# Bazel entry point of //tests/vm:vm_e2e_test: the VM workout and the
# conformance suite against the backend given in args (workout_test.py
# --help). Fails, never skips, when the VMs cannot run.
set -euo pipefail
here="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/vm"
exec /usr/bin/python3 "$here/workout_test.py" "$@"
