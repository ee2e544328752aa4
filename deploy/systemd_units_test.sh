#!/bin/bash
# Proves deploy/systemd: both units pass `systemd-analyze verify` with no
# warning at all (verify exits 0 on unknown keys and bad values, so any
# output counts as failure), with ExecStart pointed at the Bazel-built
# binaries; the example agent.json is JSON; and a misspelt directive and a
# bad value are caught, so a pass means something.
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
agent="$(readlink -f "${runfiles}/agent/coherefs-agent")"
coordinator="$(readlink -f "${runfiles}/server/coherefs-coordinator")"
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/units.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for unit in coherefs-agent.service coherefs-coordinator.service; do
  sed -e "s|/usr/local/bin/coherefs-agent|${agent}|" \
      -e "s|/usr/local/bin/coherefs-coordinator|${coordinator}|" \
      "${runfiles}/deploy/systemd/${unit}" > "${work}/${unit}"
  grep -q "^ExecStart=${agent}\|^ExecStart=${coordinator}" "${work}/${unit}" \
    || fail "${unit}: ExecStart not rewritten"
done

# verify_clean UNIT: exit 0 and nothing printed.
verify_clean() {
  local out rc=0
  out="$(cd "${work}" && systemd-analyze verify "./$1" 2>&1)" || rc=$?
  [[ ${rc} == 0 && -z "${out}" ]]
}

for unit in coherefs-agent.service coherefs-coordinator.service; do
  verify_clean "${unit}" || {
    fail "${unit}: systemd-analyze verify:"
    (cd "${work}" && systemd-analyze verify "./${unit}") >&2 || true
  }
done

# Negative cases: each must produce a complaint.
sed 's/^ProtectSystem=strict/ProtectSytem=strict/' \
  "${work}/coherefs-coordinator.service" > "${work}/bad-key.service"
sed 's/^Restart=on-failure/Restart=sometimes/' \
  "${work}/coherefs-agent.service" > "${work}/bad-value.service"
for bad in bad-key.service bad-value.service; do
  cmp -s "${work}/${bad}" "${work}/coherefs-agent.service" && fail "${bad} unchanged"
  if verify_clean "${bad}"; then fail "${bad}: verify found nothing"; fi
done

python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
assert [v["name"] for v in c["volumes"]] == ["shared"], c
assert all(g["volume"] == "shared" for g in c["guests"]), c
assert c["coordinator"] == "127.0.0.1:7420", c
' "${runfiles}/deploy/systemd/agent.json.example" || fail "agent.json.example"

if (( failures > 0 )); then
  echo "${failures} check(s) failed" >&2
  exit 1
fi
echo "PASS: 2 units verify clean, 2 broken units caught"
