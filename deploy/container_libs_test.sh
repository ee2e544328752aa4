#!/bin/bash
# Proves deploy/container/Containerfile: the Debian packages it installs
# provide every shared library the Bazel-built coherefs-agent and
# coherefs-coordinator load (ldd on this bookworm host, mapped to packages by
# dpkg -S), counting the packages' own dependencies (apt-cache depends) and
# the base image's essential packages. The image itself is not built here
# (no container runtime in the test environment).
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
containerfile="${runfiles}/deploy/container/Containerfile"

# Packages named on the apt-get install lines (indented "lib..." lines).
listed="$(sed -n 's/^ \{6\}\(lib[a-z0-9.+-]*\) *\\\?$/\1/p' "${containerfile}")"
[[ $(echo "${listed}" | wc -l) -ge 5 ]] || {
  echo "FAIL: could not read the package list: '${listed}'" >&2; exit 1; }
for pkg in ${listed}; do
  apt-cache show "${pkg}" >/dev/null 2>&1 || {
    echo "FAIL: ${pkg} is not a Debian package here" >&2; exit 1; }
done
# What installing them brings in.
provided="$(apt-cache depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances ${listed} \
  | grep -v '^ ' | grep -v '^<' | sort -u)"

# Every library either binary loads, by real path.
libs="$(for bin in agent/coherefs-agent server/coherefs-coordinator; do
          ldd "$(readlink -f "${runfiles}/${bin}")" | awk '$3 ~ /^\// {print $3}'
        done | xargs readlink -f | sort -u)"
# Debian is usr-merged: dpkg may record /lib/... for a file in /usr/lib/...,
# so ask for both spellings in one dpkg call (it is slow per call).
owners="$(dpkg -S $(sed 's|^/usr/lib/|/lib/|' <<< "${libs}") ${libs} 2>/dev/null \
          | sed 's/^\([^:]*\):[^ ]* \(.*\)$/\1 \2/' || true)"

failures=0
while read -r lib; do
  short="${lib#/usr}"
  pkg="$(awk -v a="${lib}" -v b="${short}" '$2 == a || $2 == b {print $1; exit}' \
         <<< "${owners}")"
  if [[ -z "${pkg}" ]]; then
    echo "FAIL: ${lib} belongs to no Debian package" >&2
    failures=$((failures + 1)); continue
  fi
  # libc6 and libgcc-s1 are essential in debian:bookworm-slim.
  if ! grep -qxF "${pkg}" <<< "${provided}" && \
     [[ "${pkg}" != libc6 && "${pkg}" != libgcc-s1 ]]; then
    echo "FAIL: ${pkg} (${lib}) is not installed by the Containerfile" >&2
    failures=$((failures + 1))
  fi
done <<< "${libs}"
(( failures == 0 )) || exit 1
echo "PASS: $(echo "${listed}" | wc -l) packages cover the $(echo "${libs}" | wc -l) libraries both binaries load"
