#!/bin/bash
# Proves the agent configs shipped in deploy/ (k8s/base/agent.json, the
# ConfigMap's content, and systemd/agent.json.example) are accepted by the
# real coherefs-agent, and that the agent's probe target — HTTP GET /metrics
# on metrics_listen, used by the DaemonSet's liveness/readiness probes —
# answers 200 with coherefs metrics. Host paths and ports are moved into a
# temp dir / free loopback ports, the coordinator is dropped (none runs
# here) and coherence set to off, which needs no coordinator; every other
# field is used as shipped. A config the agent rejects (wrong enum) must
# make it exit 2.
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
agent="${runfiles}/agent/coherefs-agent"
# Socket paths must fit sun_path (108 bytes): not under TEST_TMPDIR.
work="$(mktemp -d /tmp/cfs-agentcfg.XXXXXX)"
pid=""
cleanup() {
  if [[ -n "${pid}" ]]; then kill "${pid}" 2>/dev/null || true; wait "${pid}" 2>/dev/null || true; fi
  rm -rf "${work}"
}
trap cleanup EXIT

# relocate SRC DST PORT: rewrite SRC's host paths/ports into ${work}.
relocate() {
  python3 - "$1" "$2" "${work}" "$3" <<'PY'
import json, sys
src, dst, work, port = sys.argv[1:]
c = json.load(open(src))
c.pop("coordinator", None)
c.pop("admin_listen", None)
for v in c["volumes"]:
    v["shared_dir"] = work + "/shared"
    v["coherence"] = "COHERENCE_OFF"
for g in c["guests"]:
    g["socket_path"] = work + "/run/" + g["name"] + ".sock"
c["metrics_listen"] = "127.0.0.1:" + port
json.dump(c, open(dst, "w"))
PY
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for cfg in deploy/k8s/base/agent.json deploy/systemd/agent.json.example; do
  rm -rf "${work}/shared" "${work}/run"; mkdir -p "${work}/shared" "${work}/run"
  port="$(free_port)"
  relocate "${runfiles}/${cfg}" "${work}/agent.json" "${port}"
  "${agent}" --config="${work}/agent.json" > "${work}/log" 2>&1 &
  pid=$!
  ok=""
  for _ in $(seq 1 100); do   # at most 10 s
    if body="$(curl -sf "http://127.0.0.1:${port}/metrics")"; then ok=1; break; fi
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "${ok}" ]]; then
    fail "${cfg}: GET /metrics never answered"; cat "${work}/log" >&2
  else
    grep -q '^coherefs_agent_' <<< "${body}" || fail "${cfg}: no coherefs_agent_ metric"
    for guest in vm1 vm2; do
      [[ -S "${work}/run/${guest}.sock" ]] || fail "${cfg}: no socket for ${guest}"
    done
  fi
  kill "${pid}" 2>/dev/null || true; wait "${pid}" 2>/dev/null || true; pid=""
done

# Negative: an unknown cache mode is rejected with exit status 2.
sed 's/CACHE_ALWAYS/CACHE_SOMETIMES/' "${work}/agent.json" > "${work}/bad.json"
cmp -s "${work}/agent.json" "${work}/bad.json" && fail "bad.json unchanged"
rc=0; timeout 10 "${agent}" --config="${work}/bad.json" > "${work}/log" 2>&1 || rc=$?
[[ ${rc} == 2 ]] || { fail "bad config: exit ${rc}, want 2"; cat "${work}/log" >&2; }

if (( failures > 0 )); then
  echo "${failures} check(s) failed" >&2
  exit 1
fi
echo "PASS: 2 shipped configs served guests and /metrics, 1 bad config rejected"
