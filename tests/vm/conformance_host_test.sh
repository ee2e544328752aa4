#!/usr/bin/env bash
# Runs the conformance suite on a fresh directory of the host's /tmp, with
# /dev/shm as the other file system for the EXDEV checks.
set -euo pipefail
bin="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/tests/vm/conformance"
# Under /tmp, not TEST_TMPDIR: uid 65534 must be able to reach it.
dir="$(mktemp -d /tmp/cohconf.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
chmod 0755 "$dir"
"$bin" "$dir" --other /dev/shm
