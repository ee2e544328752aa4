#!/usr/bin/env bash
# Makes a test certificate authority and the certificates a coherefs cluster
# needs for mutual TLS (README "Transport security"), with the openssl CLI:
#
#   scripts/make-test-ca.sh DIR [AGENT_ID...]
#
# DIR/ca.pem, ca.key                 the CA (every party trusts ca.pem)
# DIR/coordinator.pem, .key          the coordinator's server certificate:
#                                    SAN localhost, 127.0.0.1, coherefs-coordinator
#                                    (+ .coherefs.svc), $COHEREFS_COORDINATOR_SANS
# DIR/agent-ID.pem, .key             one per AGENT_ID: CN = the agent id (the
#                                    coordinator binds registrations to it),
#                                    SAN DNS:ID, localhost, 127.0.0.1; client
#                                    AND server use (coordinator link, admin service)
# DIR/operator.pem, .key             coherectl's client certificate (CN operator)
#
# For tests and trials: the CA key sits next to the certificates, keys are
# P-256 and unencrypted (0600), certificates last $COHEREFS_CERT_DAYS (365)
# days. Existing files in DIR are replaced. Exit 2 on bad usage.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: make-test-ca.sh DIR [AGENT_ID...]" >&2
  exit 2
fi
dir="$1"
shift
command -v openssl >/dev/null || { echo "make-test-ca: openssl not found (apt-get install openssl)" >&2; exit 1; }
days="${COHEREFS_CERT_DAYS:-365}"
mkdir -p "$dir"
umask 077
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME CN EXTENSIONS: DIR/NAME.key + DIR/NAME.pem signed by the CA.
sign() {
  local name="$1" cn="$2" ext="$3"
  newkey "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
  printf '%s\n' "$ext" > "$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile "$tmp/$name.ext" -out "$dir/$name.pem" 2>/dev/null
  chmod 0644 "$dir/$name.pem"
}

newkey "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" \
  -subj "/CN=coherefs test CA $(date -u +%Y%m%dT%H%M%SZ)-$RANDOM" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem"
chmod 0644 "$dir/ca.pem"

leaf='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment'
extra_sans=""
for san in ${COHEREFS_COORDINATOR_SANS:-}; do extra_sans+=",$san"; done
sign coordinator coherefs-coordinator "$leaf
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:coherefs-coordinator,DNS:coherefs-coordinator.coherefs.svc$extra_sans"

for id in "$@"; do
  if [[ ! "$id" =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$ ]]; then
    echo "make-test-ca: agent id '$id' is not a DNS-style name" >&2
    exit 2
  fi
  sign "agent-$id" "$id" "$leaf
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$id,DNS:localhost,IP:127.0.0.1"
done

sign operator operator "$leaf
extendedKeyUsage=clientAuth"

echo "make-test-ca: CA and certificates in $dir"
