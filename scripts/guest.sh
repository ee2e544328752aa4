#!/usr/bin/env bash
# Boots a small QEMU guest (Debian's kernel, busybox) on one of the sockets
# that scripts/run.sh serves, with the volume mounted on /mnt:
#
#   scripts/guest.sh vm1                 # a shell prompt in the guest
#   scripts/guest.sh vm2 'echo hi > /mnt/hello'   # one command, then power off
#
# The first run fetches the guest kernel package (apt-get download) into
# tests/vm/.cache. Same COHEREFS_HOME as scripts/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/guest.sh NAME [COMMAND]}"
shift
home=${COHEREFS_HOME:-/var/tmp/coherefs}
exec python3 tests/vm/guest_cli.py --socket="$home/sockets/$name.sock" \
  --name="$name" --tag=default "$@"
