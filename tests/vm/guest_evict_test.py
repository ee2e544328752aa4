"""`coherectl guest evict` against a real guest: one TCG QEMU guest (stock
Debian kernel, virtiofs mounted) on a coherefs-agent with --admin-listen.

Checked, through coherectl (text and JSON):
  * before: the guest is connected, FUSE 7.x as the guest kernel negotiated
    it, its queues running with QEMU's sizes, a file written and read back;
  * `guest evict`: the agent closes the session; QEMU keeps running, the
    guest's shell still answers, but a lookup on the share gets no reply
    (it waits: the documented outcome for an evicted guest);
  * `guest admit`: the socket accepts again; this QEMU (a chardev without
    `reconnect=`; QEMU 7.2's vhost-user-fs cannot start with one, its
    realize needs the socket connected) does not come back by itself: the
    guest shows "idle" until its VM is restarted.
  guest_evict_test.py --agent-bin=P --coherectl=P
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
import build_initramfs  # noqa: E402
import testlib  # noqa: E402
import vmlib  # noqa: E402
from testlib import free_port  # noqa: E402

results = testlib.Results()
check = results.check


def ctl(binary, *args):
    p = subprocess.run([binary, "--insecure"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def guest_json(binary, admin):
    rc, out, err = ctl(binary, "--json", "agent", "status", "--agent=" + admin)
    if rc != 0:
        raise RuntimeError("agent status: %d %s" % (rc, err))
    return json.loads(out)["agents"][0]["guests"][0]


def wait_for(pred, what, timeout_s=20):
    return testlib.wait_for(pred, timeout_s, what, interval_s=0.1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--coherectl", required=True)
    a = ap.parse_args()
    vmlib.install_signal_handlers()
    kernel_dir = vmlib.ensure_kernel()
    coherectl = os.path.abspath(a.coherectl)
    admin = "127.0.0.1:%d" % free_port()
    work = vmlib.tempfile.mkdtemp(prefix="cohevict.", dir="/tmp")
    shared = os.path.join(work, "shared")
    os.mkdir(shared)
    sock = os.path.join(work, "vm1.sock")
    backend = vmlib.CoherefsBackend(os.path.abspath(a.agent_bin),
                                    extra_args=["--admin-listen=" + admin])
    guest = None
    done = False
    t0 = time.monotonic()
    try:
        backend.start(shared, [sock], work)
        initrd = build_initramfs.build(kernel_dir, kernel_dir)
        guest = vmlib.Guest("vm1", work, sock, "share",
                            os.path.join(kernel_dir, "vmlinux"), initrd, accel="tcg")
        guest.start()
        guest.wait_ready(90)
        print("guest ready after %.1f s" % (time.monotonic() - t0))
        out = guest.check("echo before > /mnt/f && cat /mnt/f")
        check("share works before", out == "before\n", out)

        g = guest_json(coherectl, admin)
        queues = g["queues"]
        check("connected guest", (g["name"], g["state"], g["connected"], g["evicted"],
                                  g["fuse_major"], g["connections"]) ==
              ("vm1", "connected", True, False, 7, 1) and g["fuse_minor"] >= 31 and
              g["max_write"] > 0, g)
        # QEMU's vhost-user-fs-pci: hiprio + 1 request queue of queue-size 128.
        check("queues as QEMU set them",
              [(q["index"], q["size"], q["started"], q["enabled"]) for q in queues[:2]] ==
              [(0, 128, True, True), (1, 128, True, True)] and
              all(not q["started"] for q in queues[2:]), queues)
        rc, out, err = ctl(coherectl, "agent", "status", "--agent=" + admin)
        row = [l.split() for l in out.splitlines() if l.split()[:1] == ["vm1"]]
        check("agent status human", rc == 0 and len(row) == 1 and
              row[0][2:5] == ["connected", "auto", "7.%d" % g["fuse_minor"]], out)

        rc, out, err = ctl(coherectl, "guest", "evict", "--agent=" + admin, "vm1")
        check("guest evict", (rc, out, err) == (
            0, "agent %s: evicted guest vm1 (its connection was closed); its socket refuses "
               "connections until `coherectl guest admit`\n" % admin, ""), (rc, out, err))
        g = wait_for(lambda: (lambda g: g if not g["connected"] else None)(
            guest_json(coherectl, admin)), "the session to end")
        check("evicted status", (g["state"], g["evicted"], g["queues"]) ==
              ("evicted", True, []), g)
        # The guest is alive and its shell answers; a lookup on the share
        # waits for a reply that no longer comes.
        out = guest.check("(stat /mnt/never-seen >/tmp/st.out 2>&1; echo $? >/tmp/st.rc) &"
                          " echo started", timeout=30)
        check("guest shell answers after eviction", out.strip() == "started", out)
        time.sleep(3)
        rc, out = guest.run("cat /tmp/st.rc 2>/dev/null || echo waiting", timeout=30)
        check("evicted guest gets no reply", out.strip() == "waiting", out)
        check("QEMU still running", guest.qemu.poll() is None, guest.qemu.returncode)
        g = guest_json(coherectl, admin)
        check("still evicted", (g["state"], g["connections"], g["refused_connections"]) ==
              ("evicted", 1, 0), g)

        rc, out, err = ctl(coherectl, "guest", "admit", "--agent=" + admin, "vm1")
        check("guest admit", (rc, out, err) == (
            0, "agent %s: admitted guest vm1\n" % admin, ""), (rc, out, err))
        g = guest_json(coherectl, admin)
        check("admitted: idle until the VM restarts",
              (g["state"], g["evicted"], g["connections"]) == ("idle", False, 1), g)
        check("QEMU still running after admit", guest.qemu.poll() is None,
              guest.qemu.returncode)
        done = True
    finally:
        if guest is not None:
            guest.close()
        backend.close()
        if done and results.failed == 0:
            vmlib.shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept %s (logs)" % work, file=sys.stderr)
    print("took %.1f s" % (time.monotonic() - t0))
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
