#!/usr/bin/env python3
"""A guest reads the REAL agent's version table through ivshmem and sees a
file's version rise after ANOTHER guest's chmod.

One coordinator, two coherefs-agents (one per guest: two hosts; strict
coherence, cache=always), each exporting its volume table
(--table-export-dir; <volume>.table.json gives the QEMU arguments). Guest
g0 (the reader) gets agent 0's table as an ivshmem-plain device; guest g1
(the writer) changes files through agent 1. The host finds a file's slot
with `coherefs-table slot` (file key resolved at the coordinator). Checked:
  - g0 reads the table header (`info`: the volume's table, not fenced);
  - g0's `get SLOT` equals the version the coordinator has for the file;
  - a `watch SLOT` started in g0 before g1's chmod reports a rise, and
    g0's `get` then equals the coordinator's new version;
  - a chmod of ANOTHER file by g1 leaves g0's view of the slot unchanged;
  - guests never write a version table: g0 maps the BAR read-write and
    overwrites its first page; the host's table bytes are unchanged, the
    (sandboxed) agent runs on, and g0 still reads correct versions.
Fails, never skips, when the VMs cannot run.
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
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
import coordinator  # noqa: E402
import vmlib  # noqa: E402

VOLUME = "default"


def expect(what, got, want):
    if got != want:
        raise vmlib.VmError("%s: got %r, want %r" % (what, got, want))
    print("ok   %s: %r" % (what, got))


def wait_export(path, deadline_s=20):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            time.sleep(0.05)
    raise vmlib.VmError("no table export %s after %.0f s" % (path, deadline_s))


class Host:
    """The host-side coherefs-table (slot, and reading a table file)."""

    def __init__(self, binary, target):
        self.binary = binary
        self.target = target

    def slot(self, path):
        out = subprocess.run(
            [self.binary, "--coordinator", self.target, "--volume", VOLUME,
             "--json", "slot", path], check=True, capture_output=True,
            text=True, timeout=30).stdout
        j = json.loads(out)
        return j["slot"], j["version"]


def guest_get(guest, table, slot):
    rc, out = guest.run("%s --pci auto get %d" % (table, slot))
    if rc != 0:
        raise vmlib.VmError("get %d: exit %d: %s" % (slot, rc, out))
    return int(out)


def run_checks(reader, writer, host, shared, table):
    rc, out = reader.run(table + " --pci auto --json info")
    expect("info exit", rc, 0)
    info = json.loads(out)
    expect("layout_version", info["layout_version"], 1)
    expect("fenced", info["fenced"], False)
    print("     table: capacity %d, slots used %d, epoch %d" % (
        info["capacity"], info["slots_used"], info["epoch"]))

    writer.check("printf x > /mnt/f && printf y > /mnt/g && chmod 644 "
                 "/mnt/f /mnt/g")
    slot, v0 = host.slot(os.path.join(shared, "f"))
    other, _ = host.slot(os.path.join(shared, "g"))
    if slot == other:
        raise vmlib.VmError("f and g share slot %d" % slot)
    print("     f is slot %d (version %#x), g is slot %d" % (slot, v0, other))
    # The table follows the coordinator asynchronously (its subscription).
    deadline = time.monotonic() + 10
    seen = guest_get(reader, table, slot)
    while seen != v0 and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = guest_get(reader, table, slot)
    expect("guest's slot %d = coordinator's version" % slot, seen, v0)

    reader.check("(%s --pci auto --json watch %d --timeout-ms 60000 "
                 ">/tmp/w.out 2>&1; echo $? >/tmp/w.rc) &" % (table, slot))
    time.sleep(1.0)  # let watch read its first version under TCG
    t0 = time.monotonic()
    writer.check("chmod 600 /mnt/f")
    chmod_s = time.monotonic() - t0
    done = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rc, _ = reader.run("test -s /tmp/w.rc")
        if rc == 0:
            done = True
            break
        time.sleep(0.2)
    expect("watch finished", done, True)
    rc, out = reader.run("cat /tmp/w.rc /tmp/w.out")
    lines = out.split("\n")
    expect("watch exit", lines[0], "0")
    w = json.loads(lines[1])
    expect("watch saw a change", w["changed"], True)
    expect("watch started from the coordinator's version", w["old"], v0)
    if not w["new"] > w["old"]:
        raise vmlib.VmError("version did not rise: %r" % w)
    _, v1 = host.slot(os.path.join(shared, "f"))
    if not v1 > v0:
        raise vmlib.VmError("coordinator version of f did not rise: %#x -> "
                            "%#x" % (v0, v1))
    expect("guest's slot after chmod = coordinator's version",
           guest_get(reader, table, slot), v1)
    print("     chmod in g1 returned after %.3f s; g0 saw %#x -> %#x "
          "(watch waited %d us)" % (chmod_s, w["old"], w["new"],
                                    w["waited_us"]))

    writer.check("chmod 600 /mnt/g")
    _, g_after = host.slot(os.path.join(shared, "g"))
    time.sleep(0.5)
    expect("f's slot after g's chmod (unchanged)",
           guest_get(reader, table, slot), v1)
    print("     g's version now %#x" % g_after)


def hostile_guest(reader, writer, host, shared, table, export, agent, poke):
    """Guests never write a version table: g0 maps the BAR read-write and
    overwrites its first page (header and the first slots); the agent's
    table on the host is unchanged, the agent runs on, and g0 still reads
    the coordinator's versions (and sees the next change)."""
    with open(export["path"], "rb") as f:
        before = f.read(4096)
    rc, out = reader.run(table + " --pci auto --json info")
    expect("info exit before poke", rc, 0)
    resource = json.loads(out)["path"]
    rc, out = reader.run("%s %s fill" % (poke, resource))
    print("     bar_poke fill: rc=%d %s" % (rc, out.strip()))
    time.sleep(0.5)
    with open(export["path"], "rb") as f:
        after = f.read(4096)
    expect("host table page 0 after the guest's stores (unchanged)",
           after == before, True)
    expect("no poked bytes in the host table", b"\xa5" * 16 in after, False)
    expect("agent still running", agent.poll(), None)
    slot, v = host.slot(os.path.join(shared, "f"))
    expect("guest still reads the coordinator's version",
           guest_get(reader, table, slot), v)
    writer.check("chmod 640 /mnt/f")
    _, v2 = host.slot(os.path.join(shared, "f"))
    deadline = time.monotonic() + 10
    seen = guest_get(reader, table, slot)
    while seen != v2 and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = guest_get(reader, table, slot)
    expect("guest sees the next change after the poke", seen, v2)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--table-host-bin", required=True,
                    help="coherefs-table (host build: slot)")
    ap.add_argument("--table-bin", required=True,
                    help="coherefs-table-static (for the guest)")
    ap.add_argument("--kernel-dir", default=vmlib.DEFAULT_KERNEL_DIR)
    args = ap.parse_args()
    vmlib.install_signal_handlers()
    vmlib.ensure_kernel(args.kernel_dir)
    work = tempfile.mkdtemp(prefix="cohatv.", dir="/tmp")
    try:
        with coordinator.Coordinator(os.path.abspath(args.coordinator_bin),
                                     work) as crd:
            exports = [os.path.join(work, "export%d" % i) for i in (0, 1)]
            for d in exports:
                os.mkdir(d)

            def agent_args(i):
                return ["--coordinator=" + crd.target,
                        "--agent-id=vm-agent-%d" % i, "--coherence=strict",
                        "--table-export-dir=" + exports[i]]

            def guest_args(i):
                if i != 0:
                    return []
                ex = wait_export(os.path.join(exports[0],
                                              VOLUME + ".table.json"))
                print("     agent 0 exports %s (%d bytes)" % (ex["path"],
                                                              ex["size"]))
                return ex["qemu_args"]

            backend = vmlib.CoherefsBackend(
                os.path.abspath(args.agent_bin), sockets="per-guest",
                cache="always", per_agent_args=agent_args)
            with vmlib.Cluster(backend, 2, kernel_dir=args.kernel_dir,
                               guest_qemu_args=guest_args) as c:
                print("accel: %s (%s)" % (c.accel, c.accel_reason))
                dst = os.path.join(c.shared_dir, "coherefs-table")
                shutil.copy(args.table_bin, dst)
                os.chmod(dst, 0o755)
                poke = os.path.join(c.shared_dir, "bar_poke")
                subprocess.run(["gcc", "-static", "-O2", "-o", poke,
                                os.path.join(HERE, "bar_poke.c")], check=True)
                host = Host(os.path.abspath(args.table_host_bin), crd.target)
                try:
                    run_checks(c.guests[0], c.guests[1], host,
                               c.shared_dir, "/mnt/coherefs-table")
                    hostile_guest(
                        c.guests[0], c.guests[1], host, c.shared_dir,
                        "/mnt/coherefs-table",
                        wait_export(os.path.join(exports[0],
                                                 VOLUME + ".table.json")),
                        backend.procs[0], "/mnt/bar_poke")
                except vmlib.VmError as e:
                    print("FAIL: %s" % e)
                    for g in c.guests:
                        print(vmlib._tail(g.console))
                    for i in (0, 1):
                        print(vmlib._tail(os.path.join(
                            c.workdir, "agent%d.log" % i)))
                    return 1
        print("PASS agent_table_vm_test")
        return 0
    except (vmlib.VmError, RuntimeError, subprocess.CalledProcessError) as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
