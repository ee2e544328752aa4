#!/bin/busybox sh
# shellcheck shell=dash disable=SC3045,SC2013
# (busybox ash: read -t exists; word splitting of the cmdline is intended)
# /init of the test guest's initramfs (tests/vm/build_initramfs.py puts it
# there). It loads the virtio-fs modules, mounts the share named by
# coherefs.tag= on coherefs.mnt= (default /mnt), then serves commands on the
# second serial port, /dev/ttyS1, until the host powers it off.
#
# Command channel, one request per line, host -> guest:
#     ID BASE64(shell script)
# reply, guest -> host:
#     @@BEGIN ID
#     BASE64(stdout and stderr of the script, wrapped at 76 columns)
#     @@END ID RC
# Base64 both ways keeps newlines, quotes and binary output out of the
# framing. The host ignores replies to IDs it is not waiting for, so lines
# that arrived before this loop started (early pings) are harmless.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp

tag=""
mnt=/mnt
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    coherefs.tag=*) tag="${arg#coherefs.tag=}" ;;
    coherefs.mnt=*) mnt="${arg#coherefs.mnt=}" ;;
  esac
done

for m in $(cat /etc/modules.load); do
  insmod "/lib/modules/$m.ko" || echo "init: insmod $m failed"
done

status=unmounted
if [ -n "$tag" ]; then
  mkdir -p "$mnt"
  # The device probes when virtio_pci loads; retry briefly in case the
  # virtiofs instance registers a moment later. Bounded: 50 x 0.1 s.
  i=0
  while [ $i -lt 50 ]; do
    if mount -t virtiofs "$tag" "$mnt" 2>/tmp/mount.err; then
      status=mounted
      break
    fi
    usleep 100000
    i=$((i + 1))
  done
  [ "$status" = mounted ] || cat /tmp/mount.err
fi
echo "init: virtiofs $tag on $mnt: $status at uptime $(cut -d' ' -f1 /proc/uptime)"
echo "$status $(cut -d' ' -f1 /proc/uptime)" > /tmp/mount.status

# The host starts pinging when it sees the line above on the console.
# Keep ttyS1 open from here on: each last close and reopen resets the UART
# and can drop bytes.
exec 3< /dev/ttyS1
stty -F /dev/ttyS1 raw -echo
# Drop anything that arrived before raw mode (early pings, line noise):
# stop at the first 0.1 s of silence, at most 100 lines.
i=0
while [ $i -lt 100 ] && read -r -t 0.1 _ <&3; do
  i=$((i + 1))
done
while read -r id b64 <&3; do
  [ -n "$id" ] || continue
  echo "$b64" | base64 -d > /tmp/cmd.sh 2>/dev/null
  (cd /tmp && sh /tmp/cmd.sh) > /tmp/cmd.out 2>&1 < /dev/null
  rc=$?
  { echo "@@BEGIN $id"; base64 /tmp/cmd.out; echo "@@END $id $rc"; } > /dev/ttyS1
done
echo "init: command channel closed"
poweroff -f
