#!/usr/bin/env bash
# Boots a real QEMU (TCG) guest against init_only_server to check that the
# vhost-user negotiation with QEMU's vhost-user-fs-pci works and that FUSE
# INIT makes it across the virtqueues. Manual check, not a Bazel test.
#
#   agent/virtio_fs/qemu_smoke.sh [KERNEL_DIR]
# KERNEL_DIR holds vmlinux, modules/*.ko and modules.load, as written by
# scripts/fetch-guest-kernel.sh (default tests/vm/.cache; only read).
# Everything else lives in a temp dir removed on exit; QEMU and the server
# are killed by PID on every exit path.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
kdir="${1:-$repo/tests/vm/.cache}"
work="$(mktemp -d /tmp/vfs-smoke.XXXXXX)"
server_pid=""
qemu_pid=""
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cd "$repo"
bazel --output_base=/root/.cache/bazel-vhost build --symlink_prefix=/ \
  //agent/virtio_fs:init_only_server >/dev/null 2>&1
bin="$(bazel --output_base=/root/.cache/bazel-vhost info bazel-bin 2>/dev/null)"

mkdir -p "$work/root/bin" "$work/root/modules"
cp /bin/busybox "$work/root/bin/busybox"
cp "$kdir"/modules/*.ko "$work/root/modules/"
cp "$kdir/modules.load" "$work/root/modules.load"
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules.load); do $B insmod /modules/$m.ko 2>/dev/null; done
if $B mount -t virtiofs smoketag /mnt; then echo "SMOKE mount=ok"; else echo "SMOKE mount=failed"; fi
$B stat /mnt >/dev/null 2>&1; echo "SMOKE stat_rc=$?"
$B umount /mnt; echo "SMOKE umount_rc=$?"
echo "SMOKE done"
$B poweroff -f
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet > "$work/initramfs.cpio")

"$bin/agent/virtio_fs/init_only_server" "$work/fs.sock" smoketag \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -S "$work/fs.sock" ] && break; sleep 0.05; done

start=$(date +%s.%N)
timeout 120 qemu-system-x86_64 -accel tcg -cpu max \
  -machine q35,memory-backend=mem -m 512M -smp 1 \
  -object memory-backend-memfd,id=mem,size=512M,share=on \
  -chardev socket,id=vfs,path="$work/fs.sock" \
  -device vhost-user-fs-pci,chardev=vfs,tag=smoketag \
  -kernel "$kdir/vmlinux" -initrd "$work/initramfs.cpio" \
  -append "console=ttyS0 quiet panic=-1" \
  -display none -monitor none -no-reboot -serial file:"$work/serial.log" \
  >"$work/qemu.log" 2>&1 &
qemu_pid=$!
wait "$qemu_pid" || echo "qemu exit status $?"
qemu_pid=""
end=$(date +%s.%N)
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""

echo "--- qemu stderr"; cat "$work/qemu.log"
echo "--- guest serial (SMOKE lines and errors)"
grep -E "SMOKE|virtio|fuse|error|Error" "$work/serial.log" || true
echo "--- server log"; cat "$work/server.log"
echo "--- elapsed $(echo "$end - $start" | bc) s"
grep -q "SMOKE mount=ok" "$work/serial.log"
