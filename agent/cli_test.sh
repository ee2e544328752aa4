#!/usr/bin/env bash
# coherefs-agent's command line: bad input exits 2 with a message naming the
# problem, and a good configuration serves until SIGTERM, then exits 0.
set -uo pipefail
agent="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE}/agent/coherefs-agent"
work="$(mktemp -d /tmp/cohcli.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/shared"
passed=0
failed=0

# expect_exit CODE PATTERN ARGS...: runs the agent, checks exit code and stderr.
expect_exit() {
  local want="$1" pattern="$2"; shift 2
  "$agent" "$@" >"$work/out" 2>&1
  local rc=$?
  if [ "$rc" -eq "$want" ] && grep -q -- "$pattern" "$work/out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: coherefs-agent $* exited $rc (want $want, output matching '$pattern'):"
    cat "$work/out"
  fi
}

expect_exit 2 "Unknown command line flag" --no-such-flag
expect_exit 2 "volumes" --socket-path="$work/a.sock"
expect_exit 2 "guests" --shared-dir="$work/shared"
expect_exit 2 "is not one of none, auto, always" --shared-dir="$work/shared" \
  --socket-path="$work/a.sock" --cache=sometimes
expect_exit 2 "must be an absolute path" --shared-dir=relative --socket-path="$work/a.sock"
expect_exit 2 "is not an existing directory" --shared-dir="$work/missing" \
  --socket-path="$work/a.sock"
expect_exit 2 "used twice" --shared-dir="$work/shared" \
  --socket-path="$work/a.sock,$work/a.sock"
expect_exit 2 "config file" --config="$work/nope.json"
echo '{"volumes": [' >"$work/bad.json"
expect_exit 2 "bad.json" --config="$work/bad.json"
expect_exit 2 "unexpected argument" --shared-dir="$work/shared" \
  --socket-path="$work/a.sock" stray
# gRPC (coordinator link, admin service) needs mutual TLS or --insecure.
expect_exit 2 "no transport security: pass --tls-ca, --tls-cert and --tls-key" \
  --shared-dir="$work/shared" --socket-path="$work/a.sock" --coordinator=127.0.0.1:1
expect_exit 2 "no transport security" --shared-dir="$work/shared" \
  --socket-path="$work/a.sock" --admin-listen=127.0.0.1:0
expect_exit 2 "--tls-ca $work/ca.pem: no such file" --shared-dir="$work/shared" \
  --socket-path="$work/a.sock" --coordinator=127.0.0.1:1 --tls-ca="$work/ca.pem" \
  --tls-cert="$work/a.pem" --tls-key="$work/a.key"
expect_exit 2 "exclude each other" --shared-dir="$work/shared" --socket-path="$work/a.sock" \
  --coordinator=127.0.0.1:1 --insecure --tls-ca="$work/ca.pem"

# A good configuration: serves, then SIGTERM -> exit 0 and the socket is gone.
"$agent" --shared-dir="$work/shared" --socket-path="$work/a.sock" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do [ -S "$work/a.sock" ] && break; sleep 0.05; done
if [ -S "$work/a.sock" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: socket not created"; cat "$work/log"; fi
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
if [ "$rc" -eq 0 ] && [ ! -e "$work/a.sock" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: SIGTERM: exit $rc, socket left: $(ls "$work")"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
