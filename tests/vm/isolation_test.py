#!/usr/bin/env python3
"""A guest that crashes affects no other guest, and its socket serves again.

One coherefs-agent serves two guests. Guest g1 runs a metadata loop on the
share and its QEMU is killed with SIGKILL mid-loop (a crashed VM: the
vhost-user connection drops with requests in flight). Then:
  - g0 keeps working: create, write, read back, rename, list;
  - the agent process is still running;
  - a new guest boots on g1's socket (the reconnect path: a fresh session)
    and sees g0's files and what g1 wrote before it died.

Ends with "N passed, N failed"; exit 1 on any failure, 2 if the VMs could
not be brought up. Backend flags as vmlib (use --backend coherefs).
"""

import argparse
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import vmlib  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    vmlib.add_backend_args(parser)
    args = parser.parse_args()
    vmlib.install_signal_handlers()
    backend = vmlib.backend_from_args(args)
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + detail),
              flush=True)
        if ok:
            passed += 1
        else:
            failed += 1

    try:
        with vmlib.Cluster(backend, 2) as cluster:
            g0, g1 = cluster.guests
            g1.check("mkdir -p /mnt/g1 && echo before-crash > /mnt/g1/kept && sync")
            # A busy metadata loop, left running in the background.
            g1.check("(i=0; while true; do i=$((i+1)); echo $i > /mnt/g1/f$((i%50)); "
                     "mv /mnt/g1/f$((i%50)) /mnt/g1/g$((i%50)); ls /mnt/g1 >/dev/null; "
                     "done) >/dev/null 2>&1 &")
            time.sleep(2)
            g1.qemu.send_signal(signal.SIGKILL)
            g1.qemu.wait(10)
            check("g1 QEMU killed", g1.qemu.returncode == -signal.SIGKILL,
                  "rc %s" % g1.qemu.returncode)

            rc, out = g0.run("mkdir -p /mnt/g0 && echo alive > /mnt/g0/a && "
                             "mv /mnt/g0/a /mnt/g0/b && cat /mnt/g0/b && ls /mnt/g0", timeout=60)
            check("g0 works after g1 crashed", rc == 0 and out.split() == ["alive", "b"],
                  "rc %d: %r" % (rc, out))
            check("g0 change visible on the host",
                  open(os.path.join(cluster.shared_dir, "g0", "b")).read() == "alive\n")
            agents = [p for p in backend.procs]
            check("agent still running", all(p.poll() is None for p in agents),
                  "exit codes %s" % [p.poll() for p in agents])

            # A new guest on the crashed guest's socket: a fresh session.
            g1.close()
            g2 = vmlib.Guest("g2", cluster.workdir, g1.vfs_socket, g1.tag, g1.kernel,
                             g1.initrd, accel=g1.accel)
            cluster.guests.append(g2)  # powered off and cleaned up by the cluster
            g2.start()
            g2.wait_ready(cluster.boot_deadline_s)
            rc, out = g2.run("cat /mnt/g0/b /mnt/g1/kept", timeout=60)
            check("reconnected guest sees the share", rc == 0 and out.split() == [
                "alive", "before-crash"], "rc %d: %r" % (rc, out))
            rc, out = g2.run("echo from-g2 > /mnt/g2file && cat /mnt/g2file", timeout=60)
            check("reconnected guest can write", rc == 0 and out.strip() == "from-g2",
                  "rc %d: %r" % (rc, out))
            rc, out = g0.run("cat /mnt/g2file", timeout=60)
            check("g0 reads the reconnected guest's file", rc == 0 and out.strip() == "from-g2",
                  "rc %d: %r" % (rc, out))
    except vmlib.VmError as e:
        print("VM error: %s" % e, flush=True)
        print("%d passed, %d failed" % (passed, failed + 1))
        return 2
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
