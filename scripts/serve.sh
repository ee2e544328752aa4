#!/usr/bin/env bash
# Runs a coordinator and an agent on this machine from built binaries (the
# daemon half of scripts/run.sh; tests call it with their own binaries):
# volume "default" in $COHEREFS_HOME/volume, served to the guests named in
# COHEREFS_GUESTS (default "vm1 vm2") on $COHEREFS_HOME/sockets/NAME.sock.
# SIGTERM/SIGINT stop both daemons; if one exits, the other is stopped.
#
#   scripts/serve.sh BIN_DIR     # BIN_DIR holds server/ agent/ client/
#
# Addresses (loopback), overridable: COHEREFS_COORDINATOR (7420),
# COHEREFS_COORDINATOR_METRICS (9420), COHEREFS_AGENT_METRICS (9421),
# COHEREFS_AGENT_ADMIN (7421).
set -euo pipefail
bin="$(cd "${1:?usage: scripts/serve.sh BIN_DIR}" && pwd)"
home=${COHEREFS_HOME:-/var/tmp/coherefs}
coordinator=${COHEREFS_COORDINATOR:-127.0.0.1:7420}
coordinator_metrics=${COHEREFS_COORDINATOR_METRICS:-127.0.0.1:9420}
agent_metrics=${COHEREFS_AGENT_METRICS:-127.0.0.1:9421}
agent_admin=${COHEREFS_AGENT_ADMIN:-127.0.0.1:7421}
read -r -a guests <<<"${COHEREFS_GUESTS:-vm1 vm2}"

mkdir -p "$home/coordinator" "$home/volume" "$home/sockets" "$home/tables" "$home/bin"
ln -sf "$bin/client/coherectl" "$home/bin/coherectl"
sockets=()
for g in "${guests[@]}"; do sockets+=("$home/sockets/$g.sock"); done

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

rm -f "$home/coordinator.port"
# Loopback only, so plaintext (--insecure); a cluster uses mutual TLS
# (README "Transport security").
"$bin/server/coherefs-coordinator" --data-dir="$home/coordinator" \
  --listen="$coordinator" --metrics-listen="$coordinator_metrics" --volumes=default \
  --port-file="$home/coordinator.port" --insecure &
pids+=($!)
# The agent would retry, but starting it against a serving coordinator keeps
# the log free of connection errors. Bounded: 100 x 0.1 s.
for _ in $(seq 100); do
  [ -s "$home/coordinator.port" ] || ! kill -0 "${pids[0]}" 2>/dev/null && break
  sleep 0.1
done
[ -s "$home/coordinator.port" ] || { echo "serve: the coordinator did not start" >&2; exit 1; }

"$bin/agent/coherefs-agent" --shared-dir="$home/volume" \
  --socket-path="$(IFS=,; echo "${sockets[*]}")" \
  --coordinator="$coordinator" --agent-id="$(hostname)" \
  --metrics-listen="$agent_metrics" --admin-listen="$agent_admin" \
  --table-export-dir="$home/tables" --insecure &
pids+=($!)

cat <<EOT

coherefs is running (strict coherence, volume "default").
  coordinator  $coordinator   metrics http://$coordinator_metrics/metrics   data $home/coordinator
  agent        admin $agent_admin   metrics http://$agent_metrics/metrics
  volume       $home/volume
  guests       ${sockets[*]}

Next, in other terminals:
  scripts/guest.sh ${guests[0]}                        # a guest with the volume on /mnt
  $home/bin/coherectl --insecure status --agent=$agent_admin
  $home/bin/coherectl --insecure watch --volume=default
Or attach your own QEMU:
  qemu-system-x86_64 -machine q35,memory-backend=mem -m 512M \\
    -object memory-backend-memfd,id=mem,size=512M,share=on \\
    -chardev socket,id=vfs,path=${sockets[0]} \\
    -device vhost-user-fs-pci,chardev=vfs,tag=default ...
  and inside it: mount -t virtiofs default /mnt

Ctrl-C stops both daemons.
EOT
wait -n "${pids[@]}"
echo "serve: a daemon exited; stopping the other" >&2
