#!/usr/bin/env python3
"""Agent SIGKILL + restart under a busy TCG guest (issue 6, faults bullet 2).

One coherefs-agent serves one guest whose vhost-user-fs chardev has
`reconnect=1` (hot-added: see faultlib.ReconnectGuest). Per cycle:
  1. the guest writes FILES files, syncs, and checksums them; a busy loop in
     the guest then appends numbered lines to /mnt/busy;
  2. the agent is SIGKILLed and restarted on the same socket;
checked (README "Agent restarts" documents exactly this):
  - QEMU reconnects its chardev to the new agent within 10 s, and QEMU and
    the guest kernel stay up: the guest's shell answers within 2 s, again
    and again, while the share is dead;
  - a guest request made on the share after the kill does not return (QEMU
    7.2's vhost-user-fs never re-sends the vrings to a reconnected back end,
    so nothing serves them), and SIGKILL does not end it (the request is on
    the virtqueue: the kernel waits for its reply); only that process is
    stuck, the guest shell keeps answering;
  - nothing is corrupted: every file synced before the kill has its
    checksum on the host, and /mnt/busy holds only whole lines numbered
    1..N without gaps;
  - recovery: a new QEMU (the guest restarted) on the same socket is served
    by the restarted agent and reads the same checksums, writes and reads a
    new file.
--long runs 5 cycles (default 1). Prints `N passed, N failed`.
"""

import argparse
import hashlib
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faultlib  # noqa: E402
from faultlib import vmlib  # noqa: E402

FILES = 8


def host_md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def guest_md5s(g, names):
    out = g.check("cd /mnt && md5sum %s" % " ".join(names), timeout=60)
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def wait_log(path, needle, count, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with open(path, "rb") as f:
            if f.read().count(needle) >= count:
                return True
        time.sleep(0.05)
    return False


def one_cycle(res, args, cycle):
    backend = vmlib.CoherefsBackend(args.agent_bin, cache="auto",
                                    log_level="info",
                                    extra_args=args.agent_arg)
    with vmlib.Cluster(backend, 1) as c:
        g = c.guests[0]
        log = os.path.join(c.workdir, "agent0.log")
        names = ["f%d" % i for i in range(FILES)]
        g.check("cd /mnt && for f in %s; do head -c $((4096 * ${#f} + "
                "7919)) /dev/urandom > $f; done; sync" % " ".join(names))
        before = guest_md5s(g, names)
        res.check(all(host_md5(os.path.join(c.shared_dir, n)) == before[n]
                      for n in names),
                  "cycle %d: files written by the guest match on the host" %
                  cycle)
        g.check("(i=0; while true; do i=$((i+1)); echo line-$i >> "
                "/mnt/busy; done) >/dev/null 2>&1 &")
        time.sleep(2)  # the busy loop is in full swing (many appends)

        p = backend.procs[0]
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        killed_at = time.monotonic()
        backend.procs = []
        backend.start(c.shared_dir, [g.vfs_socket], c.workdir)
        reconnected = wait_log(log, b"vhost-user front end connected", 2, 10)
        res.check(reconnected,
                  "cycle %d: QEMU reconnected to the restarted agent" % cycle,
                  "%.1f s after the kill" % (time.monotonic() - killed_at))

        worst = 0.0
        for _ in range(5):
            t = time.monotonic()
            try:
                rc, out = g.run("echo alive", timeout=10)
            except (TimeoutError, vmlib.VmError):
                rc, out = -1, ""
            worst = max(worst, time.monotonic() - t)
            if rc != 0 or out.strip() != "alive":
                worst = float("inf")
            time.sleep(0.5)
        res.check(worst <= 2.0, "cycle %d: guest responsive after the kill" %
                  cycle, "slowest shell answer %.2f s" % worst)

        # A request on the dead share: backgrounded, then SIGKILLed. (It is
        # reparented to the guest's /init, which does not reap it: a killed
        # process would stay a zombie, which counts as gone.)
        g.check("cat /mnt/f0 > /dev/null 2>/tmp/cat.err & echo $! > "
                "/tmp/cat.pid")
        time.sleep(args.hang_s)
        rc, out = g.run("P=$(cat /tmp/cat.pid); "
                        "if [ -d /proc/$P ]; then "
                        "echo running $(grep State /proc/$P/status) "
                        "in $(cat /proc/$P/wchan); "
                        "else echo done; fi", timeout=10)
        res.check(out.startswith("running"),
                  "cycle %d: a request on the share after the kill blocks "
                  "(documented)" % cycle, out.strip())
        rc, out = g.run("P=$(cat /tmp/cat.pid); kill -9 $P; i=0; "
                        "alive() { grep -q '^State:.*[RSD]' "
                        "/proc/$P/status 2>/dev/null; }; "
                        "while alive && [ $i -lt 30 ]; do "
                        "usleep 100000; i=$((i+1)); done; "
                        "alive && echo stuck $(cat /proc/$P/wchan) "
                        "|| echo gone",
                        timeout=15)
        # QEMU 7.2 + Linux 6.1: the request was handed to the virtqueue, so
        # after a fatal signal request_wait_answer waits for the reply
        # regardless (README "Agent restarts"). If this ever reads "gone",
        # update the README.
        res.check(out.strip() == "stuck request_wait_answer",
                  "cycle %d: SIGKILL does not end it (documented)" % cycle,
                  out.strip())
        t = time.monotonic()
        rc, out = g.run("echo alive", timeout=10)
        res.check(rc == 0 and time.monotonic() - t <= 2.0,
                  "cycle %d: guest shell still answers" % cycle,
                  "%.2f s" % (time.monotonic() - t))

        # Nothing corrupted, seen from the host.
        res.check(all(host_md5(os.path.join(c.shared_dir, n)) == before[n]
                      for n in names),
                  "cycle %d: files synced before the kill intact on the host"
                  % cycle)
        with open(os.path.join(c.shared_dir, "busy")) as f:
            lines = f.read().split("\n")
        tail = lines.pop()  # "" when the file ends in a newline
        nums = [int(m.group(1)) for m in
                (re.fullmatch(r"line-(\d+)", s) for s in lines) if m]
        whole = (tail == "" and len(nums) == len(lines) and
                 nums == list(range(1, len(nums) + 1)))
        res.check(whole and len(nums) > 0,
                  "cycle %d: /mnt/busy holds only whole, consecutive lines" %
                  cycle, "%d lines" % len(nums))

        # Recovery: the guest restarts (a new QEMU) on the same socket.
        g.close()
        t = time.monotonic()
        g2 = faultlib.ReconnectGuest(
            "g%dr" % cycle, c.workdir, g.vfs_socket, g.tag, g.kernel,
            g.initrd, accel=g.accel)
        c.guests.append(g2)
        try:
            g2.start()
            g2.wait_ready(90)
            after = guest_md5s(g2, names)
            g2.check("echo fresh-%d > /mnt/new && sync && cat /mnt/new" %
                     cycle)
            ok = after == before and open(os.path.join(
                c.shared_dir, "new")).read() == "fresh-%d\n" % cycle
        except (vmlib.VmError, TimeoutError) as e:
            ok, after = False, str(e)
        res.check(ok, "cycle %d: a restarted guest is served by the restarted "
                  "agent and reads the same data" % cycle,
                  "ready %.1f s after its start" % (time.monotonic() - t))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    faultlib.add_binary_args(ap)
    ap.add_argument("--long", action="store_true", help="5 cycles")
    ap.add_argument("--cycles", type=int)
    ap.add_argument("--hang-s", type=float, default=5.0,
                    help="how long a request on the dead share must block")
    args = faultlib.binaries(ap.parse_args())
    cycles = args.cycles or (5 if args.long else 1)
    vmlib.install_signal_handlers()
    vmlib.ensure_kernel()
    vmlib.Guest = faultlib.ReconnectGuest  # Cluster boots these
    res = faultlib.Results()
    survived = 0
    for cycle in range(1, cycles + 1):
        failed_before = res.failed
        try:
            one_cycle(res, args, cycle)
        except (vmlib.VmError, TimeoutError, OSError) as e:
            res.check(False, "cycle %d ran" % cycle, repr(e))
        survived += res.failed == failed_before
    print("agent restarts survived: %d of %d" % (survived, cycles))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
