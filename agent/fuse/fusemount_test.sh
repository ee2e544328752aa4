#!/usr/bin/env bash
# Starts fusemount on a temp dir, reads through the mount with ordinary
# tools, sends SIGTERM to its PID and checks that it unmounted and exited 0.
# Cleans up (kill by PID, lazy umount, rmdir) on every exit path.
set -euo pipefail

bin="$1"
dir="$(mktemp -d /tmp/coherefs_fusemount_XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  if grep -q " $dir fuse" /proc/self/mounts; then umount -l "$dir"; fi
  rmdir "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bin" --dir="$dir" --threads=2 &
pid=$!
for _ in $(seq 1 100); do
  grep -q " $dir fuse.coherefs " /proc/self/mounts && break
  sleep 0.05
done
grep -q " $dir fuse.coherefs " /proc/self/mounts || fail "not mounted"

[ "$(cat "$dir/hello")" = "hello world" ] || fail "cat hello"
[ "$(cat "$dir/sub/a")" = "A" ] || fail "cat sub/a"
[ "$(readlink "$dir/link")" = "hello" ] || fail "readlink"
[ "$(ls "$dir" | tr '\n' ' ')" = "hello link sub " ] || fail "ls: $(ls "$dir")"
echo "written" > "$dir/new"
[ "$(cat "$dir/new")" = "written" ] || fail "write then read"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "fusemount exited $status"
if grep -q " $dir fuse" /proc/self/mounts; then fail "still mounted after SIGTERM"; fi
echo "PASS"
