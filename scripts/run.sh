#!/usr/bin/env bash
# The main job on an embedded default: installs what coherefs needs, builds
# it, and runs a coordinator and an agent on this machine serving one volume
# to a vhost-user socket that QEMU can attach to. Ctrl-C (or SIGTERM) stops
# both daemons cleanly.
#
#   scripts/run.sh                  # state under /var/tmp/coherefs
#   COHEREFS_HOME=/srv/cfs scripts/run.sh
#
# Ports (loopback): coordinator gRPC 7420, coordinator metrics 9420, agent
# metrics 9421. Override with COHEREFS_COORDINATOR, COHEREFS_*_METRICS.
set -euo pipefail
cd "$(dirname "$0")/.."

home=${COHEREFS_HOME:-/var/tmp/coherefs}
coordinator=${COHEREFS_COORDINATOR:-127.0.0.1:7420}
coordinator_metrics=${COHEREFS_COORDINATOR_METRICS:-127.0.0.1:9420}
agent_metrics=${COHEREFS_AGENT_METRICS:-127.0.0.1:9421}

bash scripts/install-deps.sh
bazel build //server:coherefs-coordinator //agent:coherefs-agent
bin=$(bazel info bazel-bin 2>/dev/null)

mkdir -p "$home/coordinator" "$home/volume" "$home/sockets"
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

"$bin/server/coherefs-coordinator" --data-dir="$home/coordinator" \
  --listen="$coordinator" --metrics-listen="$coordinator_metrics" --volumes=default &
pids+=($!)

"$bin/agent/coherefs-agent" --shared-dir="$home/volume" \
  --socket-path="$home/sockets/vm1.sock" --cache=always \
  --coordinator="$coordinator" --agent-id="$(hostname)" \
  --metrics-listen="$agent_metrics" &
pids+=($!)

cat <<EOT

coherefs is running.
  coordinator   $coordinator (metrics http://$coordinator_metrics/metrics), data in $home/coordinator
  agent         volume $home/volume on socket $home/sockets/vm1.sock (metrics http://$agent_metrics/metrics)

Attach a guest:
  qemu-system-x86_64 -machine q35,memory-backend=mem -m 512M \\
    -object memory-backend-memfd,id=mem,size=512M,share=on \\
    -chardev socket,id=vfs,path=$home/sockets/vm1.sock \\
    -device vhost-user-fs-pci,chardev=vfs,tag=coherefs ...
and inside it: mount -t virtiofs coherefs /mnt

Ctrl-C stops both daemons.
EOT
wait -n "${pids[@]}"
echo "a daemon exited; stopping the other" >&2
