#!/usr/bin/env bash
# The main job on an embedded default: installs what coherefs needs, builds
# it, and runs a coordinator and an agent on this machine serving volume
# "default" to two vhost-user sockets (guests vm1 and vm2) that QEMU can
# attach to (scripts/guest.sh boots a small guest on one). Ctrl-C (or
# SIGTERM) stops both daemons cleanly.
#
#   scripts/run.sh                  # state under /var/tmp/coherefs
#   COHEREFS_HOME=/srv/cfs scripts/run.sh
#
# Addresses and guest names: see scripts/serve.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bazel build //server:coherefs-coordinator //agent:coherefs-agent //client:coherectl
exec bash scripts/serve.sh "$(bazel info bazel-bin 2>/dev/null)"
