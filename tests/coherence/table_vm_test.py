#!/usr/bin/env python3
"""A guest reads the agent's version table through an ivshmem-plain BAR.

Boots one TCG guest (tests/vm harness) with a VersionTable exported the way
VersionTable::QemuArgs says (memory-backend-file on /proc/<pid>/fd/<n>,
share=on, readonly=on, ivshmem-plain), copies the static coherefs-table CLI
into the virtio-fs share, and checks in the guest:
  - `--pci auto info` finds the device and reads the header the host wrote;
  - `get` sees versions the host raises, `watch` sees a raise happen;
  - an out-of-range slot exits 1;
  - a guest that maps the BAR writable and stores into it changes nothing
    in the host's table (QEMU's readonly backend).
Fails, never skips, when the VM cannot run.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
import build_initramfs  # noqa: E402
import vmlib  # noqa: E402

CAPACITY = 1000


class Exporter:
    """The table_exporter helper: holds the table, takes commands."""

    def __init__(self, binary):
        self.p = subprocess.Popen([binary, "vt-test", str(CAPACITY)],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        first = self.p.stdout.readline().split()
        fields = dict(f.split("=", 1) for f in first)
        self.path, self.size = fields["path"], int(fields["size"])

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        if not reply.startswith("ok"):
            raise vmlib.VmError("exporter: %r -> %r" % (line, reply))
        return reply[3:]

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def expect(what, got, want):
    if got != want:
        raise vmlib.VmError("%s: got %r, want %r" % (what, got, want))
    print("ok   %s: %r" % (what, got))


def run_checks(guest, table, ex):
    rc, out = guest.run(table + " --pci auto --json info")
    expect("info exit", rc, 0)
    info = json.loads(out)
    expect("layout_version", info["layout_version"], 1)
    expect("capacity", info["capacity"], CAPACITY)
    expect("mapping_size", info["mapping_size"], ex.size)
    expect("mapped_bytes (BAR 2 size)", info["mapped_bytes"], ex.size)
    expect("fenced before sync", info["fenced"], True)
    resource = info["path"]

    ex.cmd("raise 5 77")
    ex.cmd("sync 3 9 6")
    ex.cmd("fence 0")
    rc, out = guest.run(table + " --pci auto get 5")
    expect("get 5", (rc, out), (0, "77\n"))
    rc, out = guest.run(table + " --pci auto --json info")
    info = json.loads(out)
    expect("synced header", (info["epoch"], info["committed_seq"],
                             info["slots_used"], info["fenced"]),
           (3, 9, 6, False))
    rc, out = guest.run(table + " --pci auto get %d" % CAPACITY)
    expect("get out of range exit", rc, 1)

    # watch: start it in the background, then raise until it reports.
    guest.check("(%s --pci auto --json watch 5 --timeout-ms 60000 "
                ">/tmp/w.out 2>&1; echo $? >/tmp/w.rc) &" % table)
    version, done = 77, False
    for _ in range(5):
        time.sleep(2)
        version += 1
        ex.cmd("raise 5 %d" % version)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rc, _ = guest.run("test -s /tmp/w.rc")
            if rc == 0:
                done = True
                break
            time.sleep(0.2)
        if done:
            break
    expect("watch finished", done, True)
    rc, out = guest.run("cat /tmp/w.rc /tmp/w.out")
    lines = out.split("\n")
    expect("watch exit", lines[0], "0")
    w = json.loads(lines[1])
    expect("watch saw one raise", (w["changed"], w["new"] - w["old"]),
           (True, 1))
    if not 77 <= w["old"] < version:
        raise vmlib.VmError("watch old version %r not in [77, %d)" %
                            (w["old"], version))

    # A hostile guest maps the BAR writable and stores into slot 0.
    rc, out = guest.run("/bin/bar_poke " + resource)
    print("     bar_poke: rc=%d %s" % (rc, out.strip()))
    expect("host slot 0 after guest store", ex.cmd("get 0"), "0")
    rc, out = guest.run(table + " --pci auto get 0")
    expect("guest slot 0 after guest store", (rc, out), (0, "0\n"))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--exporter-bin", required=True)
    ap.add_argument("--table-bin", required=True,
                    help="the static coherefs-table")
    ap.add_argument("--kernel-dir", default=vmlib.DEFAULT_KERNEL_DIR)
    args = ap.parse_args()
    vmlib.install_signal_handlers()
    kernel_dir = vmlib.ensure_kernel(args.kernel_dir)
    initrd = build_initramfs.build(kernel_dir, kernel_dir,
                                   [os.path.join(HERE, "bar_poke.c")])
    workdir = tempfile.mkdtemp(prefix="cohvt.", dir="/tmp")
    os.chmod(workdir, 0o755)
    shared = os.path.join(workdir, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o755)
    sock = os.path.join(workdir, "vfs0.sock")
    ex = Exporter(args.exporter_bin)
    backend = vmlib.CoherefsBackend(os.path.abspath(args.agent_bin),
                                    cache="none")
    guest = None
    try:
        backend.start(shared, [sock], workdir)
        accel, reason = vmlib.detect_accel()
        print("accel: %s (%s)" % (accel, reason))
        guest = vmlib.Guest(
            "g0", workdir, sock, "share",
            os.path.join(kernel_dir, "vmlinux"), initrd, accel=accel,
            extra_qemu_args=[
                "-object",
                "memory-backend-file,id=vt,mem-path=%s,size=%d,share=on,"
                "readonly=on" % (ex.path, ex.size),
                "-device", "ivshmem-plain,memdev=vt"])
        guest.start()
        guest.wait_ready(120)
        shutil.copy(args.table_bin, os.path.join(shared, "coherefs-table"))
        os.chmod(os.path.join(shared, "coherefs-table"), 0o755)
        run_checks(guest, "/mnt/coherefs-table", ex)
        print("PASS table_vm_test")
        return 0
    except vmlib.VmError as e:
        print("FAIL: %s" % e)
        if guest is not None:
            print(vmlib._tail(guest.console))
        return 1
    finally:
        if guest is not None:
            guest.poweroff()
        backend.close()
        ex.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
