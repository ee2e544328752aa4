#!/usr/bin/env python3
"""Boots one test guest on a vhost-user socket and gives you its shell.

    guest_cli.py --socket SOCK [--tag default] [--name vm1] [COMMAND]

With a COMMAND: runs it in the guest (cwd /tmp, share on /mnt), prints its
output, powers the guest off and exits with the command's status. Without:
reads one shell command per line from stdin and runs each in the guest
(a prompt when stdin is a terminal), until EOF or `exit`. Each line is its
own shell, so `cd` does not carry over; write `cd /mnt && ls`.

The guest is the end-to-end tests' small one (Debian's kernel, a busybox
initramfs, vmlib.Guest), booted under TCG, or KVM when it works. Exit
status: the last command's, 2 when the guest could not boot.
"""

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import build_initramfs  # noqa: E402
import vmlib  # noqa: E402


def boot(args, workdir):
    kernel_dir = vmlib.ensure_kernel(args.kernel_dir, out=sys.stderr)
    initrd = build_initramfs.build(kernel_dir, kernel_dir)
    accel, reason = vmlib.detect_accel()
    guest = vmlib.Guest(args.name, workdir, args.socket, args.tag,
                        os.path.join(kernel_dir, "vmlinux"), initrd,
                        accel=accel)
    print("guest %s: booting (%s: %s) on %s, tag %s" % (
        args.name, accel, reason, args.socket, args.tag), file=sys.stderr)
    guest.start()
    try:
        guest.wait_ready(args.boot_deadline)
    except BaseException:
        guest.close()
        raise
    print("guest %s: ready in %.1f s, share mounted on /mnt" % (
        args.name, guest.ready_after_s), file=sys.stderr)
    return guest


def run_one(guest, command, timeout):
    rc, out = guest.run(command, timeout)
    sys.stdout.write(out)
    sys.stdout.flush()
    return rc


def repl(guest, timeout):
    interactive = sys.stdin.isatty()
    rc = 0
    while True:
        if interactive:
            sys.stdout.write("%s$ " % guest.name)
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line or line.strip() == "exit":
            return rc
        if line.strip():
            rc = run_one(guest, line, timeout)
            if rc != 0 and interactive:
                print("(exit %d)" % rc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="vhost-user socket")
    parser.add_argument("--tag", default="default", help="virtio-fs tag")
    parser.add_argument("--name", default="vm", help="name in prompts/logs")
    parser.add_argument("--kernel-dir", default=vmlib.DEFAULT_KERNEL_DIR)
    parser.add_argument("--boot-deadline", type=float, default=90)
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds per command")
    parser.add_argument("command", nargs="*", help="run this and power off")
    args = parser.parse_args()
    vmlib.install_signal_handlers()
    if not os.path.exists(args.socket):
        print("guest: no socket %s (is the agent running?)" % args.socket,
              file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="cohguest.", dir="/tmp")
    try:
        try:
            guest = boot(args, workdir)
        except vmlib.VmError as e:
            print("guest: could not boot: %s" % e, file=sys.stderr)
            return 2
        try:
            if args.command:
                return run_one(guest, " ".join(args.command), args.timeout)
            return repl(guest, args.timeout)
        finally:
            guest.poweroff()
    finally:
        for f in os.listdir(workdir):
            os.unlink(os.path.join(workdir, f))
        os.rmdir(workdir)


if __name__ == "__main__":
    sys.exit(main())
