#!/usr/bin/env bash
# Mounts a coherefs volume on the host through /dev/fuse (coherefs-agent
# --host-mount), runs the conformance suite on it, and checks that the
# agent stops cleanly on SIGTERM and leaves no mount behind.
set -euo pipefail
root="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}"
agent="$root/agent/coherefs-agent"
conformance="$root/tests/vm/conformance"

# Under /tmp, not TEST_TMPDIR: uid 65534 must be able to reach it.
work="$(mktemp -d /tmp/cohfuse.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if mountpoint -q "$work/mnt"; then umount -l "$work/mnt" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/shared" "$work/mnt"
chmod 0755 "$work" "$work/shared" "$work/mnt"

"$agent" --shared-dir="$work/shared" --host-mount="$work/mnt" --cache=auto \
  --thread-pool-size=2 2>"$work/agent.log" &
pid=$!
for _ in $(seq 100); do
  mountpoint -q "$work/mnt" && break
  sleep 0.1
done
if ! mountpoint -q "$work/mnt"; then
  echo "agent did not mount $work/mnt:"; cat "$work/agent.log"; exit 1
fi

mkdir "$work/mnt/suite"
chmod 0755 "$work/mnt/suite"
set +e
"$conformance" "$work/mnt/suite" --other /dev/shm
rc=$?
set -e

kill -TERM "$pid"
wait "$pid"
agent_rc=$?
pid=""
if mountpoint -q "$work/mnt"; then
  echo "FAIL: agent exited but $work/mnt is still mounted"; exit 1
fi
if [ "$agent_rc" -ne 0 ]; then
  echo "FAIL: agent exited with $agent_rc after SIGTERM"; cat "$work/agent.log"; exit 1
fi
echo "PASS agent stopped cleanly and unmounted"
exit "$rc"
