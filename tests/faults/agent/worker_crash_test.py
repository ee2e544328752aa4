#!/usr/bin/env python3
"""The agent's worker process SIGKILLed under a busy TCG guest: the
supervisor restarts it and the guest does not notice (issue 6, faults
bullet 2; README "Agent restarts").

coherefs-agent runs supervised (the default): the process the test starts
is the supervisor, the agent proper is its one child (the worker). Before
the kills the guest writes FILES files and syncs them, keeps one of them
open in a waiting process, and runs two loops: one appends numbered lines
to /mnt/busy, one lists /mnt and stats a file; both log any error. Then,
KILLS times (3 by default, --kills N), the worker is SIGKILLed at a random
moment -- the last time it is replaced on request instead (SIGUSR2 to the
supervisor, what an upgrade does; --no-replace to skip) -- and the test
checks:
  - the supervisor starts a new worker (a new child PID) within 5 s, which
    resumes the guest's vhost-user session (log "resumed the vhost-user
    session");
  - the guest never notices: its shell answers within 2 s, both loops keep
    making progress after the kill and log no error;
  - the guest's data: every synced file has the same checksum in the guest
    and on the host, a new file can be written and read back;
then, after the last kill:
  - a file descriptor the guest opened before the first kill still reads
    the file (its handle was carried over by the node journal);
  - /mnt/busy holds whole, consecutive numbered lines (a write cut off by a
    kill may be served twice: a repeated line is counted and reported, a
    gap or a torn line fails);
  - SIGTERM to the supervisor stops it and its worker (exit 0).
First, in a guest of its own: the worker dies in the middle of QEMU's
vhost-user handshake, again and again (failpoint
vhost.message.before_reply=12*off->panic: each worker aborts after
handling its 13th message, before answering it) -- each successor answers
the message its predecessor left and goes on, and the guest boots and uses
its share as if nothing happened.
Prints `N passed, N failed`.
"""

import argparse
import hashlib
import os
import random
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faultlib  # noqa: E402
from faultlib import vmlib  # noqa: E402

FILES = 6


def host_md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wait_worker(sup_pid, not_pid, deadline_s):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        kids = [k for k in children(sup_pid) if k != not_pid]
        if kids:
            return kids[0]
        time.sleep(0.02)
    return None


def count_in(path, needle):
    with open(path, "rb") as f:
        return f.read().count(needle)


def guest_lines(g):
    rc, out = g.run("wc -l < /mnt/busy", timeout=20)
    return int(out.strip()) if rc == 0 and out.strip().isdigit() else -1


def handshake_crashes(res, args):
    """Workers that die mid-handshake (see the module docstring)."""
    os.environ["COHEREFS_FAILPOINTS"] = "vhost.message.before_reply=12*off->panic"
    backend = vmlib.CoherefsBackend(args.agent_bin, cache="auto",
                                    log_level="info",
                                    extra_args=args.agent_arg)
    try:
        with vmlib.Cluster(backend, 1) as c:
            del os.environ["COHEREFS_FAILPOINTS"]
            g = c.guests[0]
            log = os.path.join(c.workdir, "agent0.log")
            rc, out = g.run("echo booted > /mnt/hs && cat /mnt/hs", timeout=60)
            res.check(rc == 0 and out.strip() == "booted",
                      "handshake crashes: the guest booted and uses its share",
                      out.strip()[:200])
            died = count_in(log, b'msg="worker died"')
            answered = count_in(log, b"left unanswered")
            res.check(died >= 2 and answered >= 2,
                      "handshake crashes: workers died mid-handshake and each "
                      "successor answered the message left unanswered",
                      "%d deaths, %d answered" % (died, answered))
            print("     handshake: %d worker deaths, %d messages answered by "
                  "a successor" % (died, answered))
    except (vmlib.VmError, TimeoutError, OSError) as e:
        res.check(False, "handshake crashes: the guest booted", repr(e))
    finally:
        os.environ.pop("COHEREFS_FAILPOINTS", None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    faultlib.add_binary_args(ap)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--no-replace", action="store_true",
                    help="SIGKILL every time (default: the last one is a "
                    "replacement by SIGUSR2 to the supervisor)")
    args = faultlib.binaries(ap.parse_args())
    rng = random.Random(args.seed)
    print("seed %d" % args.seed)
    vmlib.install_signal_handlers()
    vmlib.ensure_kernel()
    res = faultlib.Results()
    handshake_crashes(res, args)
    survived = 0
    restart_s, resume_s = [], []
    backend = vmlib.CoherefsBackend(args.agent_bin, cache="auto",
                                    log_level="info",
                                    extra_args=args.agent_arg)
    try:
        with vmlib.Cluster(backend, 1) as c:
            g = c.guests[0]
            log = os.path.join(c.workdir, "agent0.log")
            sup = backend.procs[0]
            worker = wait_worker(sup.pid, None, 10)
            res.check(worker is not None, "the agent runs supervised",
                      "supervisor %d, worker %s" % (sup.pid, worker))
            names = ["f%d" % i for i in range(FILES)]
            g.check("cd /mnt && for f in %s; do head -c $((8192 * ${#f} + "
                    "4099)) /dev/urandom > $f; done; sync" % " ".join(names))
            out = g.check("cd /mnt && md5sum %s" % " ".join(names))
            before = {l.split()[1]: l.split()[0] for l in out.splitlines()}
            res.check(all(host_md5(os.path.join(c.shared_dir, n)) == before[n]
                          for n in names),
                      "files written by the guest match on the host")
            # A process that holds f1 open across every kill.
            g.check("(exec 3</mnt/f1; while [ ! -e /tmp/go ]; do "
                    "usleep 100000; done; md5sum <&3 > /tmp/held.md5) "
                    ">/dev/null 2>/tmp/held.err &")
            g.check("(i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); "
                    "echo line-$i >> /mnt/busy || echo append-$i-failed; "
                    "done) >/tmp/busy.err 2>&1 &")
            g.check("(while [ ! -e /tmp/stop ]; do ls -l /mnt > /dev/null "
                    "&& stat /mnt/f0 > /dev/null || echo stat-failed; done) "
                    ">/tmp/stat.err 2>&1 &")
            time.sleep(2)
            for k in range(1, args.kills + 1):
                failed_before = res.failed
                lines_before = guest_lines(g)
                time.sleep(rng.uniform(0.2, 1.5))
                resumed_before = count_in(log, b"resumed the vhost-user session")
                if k == args.kills and not args.no_replace:
                    # The last one is a replacement on request (an upgrade):
                    # SIGUSR2 to the supervisor.
                    os.kill(sup.pid, signal.SIGUSR2)
                else:
                    os.kill(worker, signal.SIGKILL)
                killed = time.monotonic()
                new = wait_worker(sup.pid, worker, 5)
                if new is not None:
                    restart_s.append(time.monotonic() - killed)
                res.check(new is not None,
                          "kill %d: the supervisor started a new worker" % k,
                          "%.2f s" % (time.monotonic() - killed))
                if new is None:
                    break
                worker = new
                end = time.monotonic() + 10
                while (time.monotonic() < end and count_in(
                        log, b"resumed the vhost-user session") <= resumed_before):
                    time.sleep(0.05)
                if count_in(log, b"resumed the vhost-user session") > resumed_before:
                    resume_s.append(time.monotonic() - killed)
                res.check(count_in(log, b"resumed the vhost-user session") >
                          resumed_before,
                          "kill %d: the new worker resumed the guest's session"
                          % k, "%.2f s after the kill" %
                          (time.monotonic() - killed))
                t = time.monotonic()
                rc, out = g.run("echo alive", timeout=10)
                res.check(rc == 0 and out.strip() == "alive" and
                          time.monotonic() - t <= 2.0,
                          "kill %d: guest shell answers" % k,
                          "%.2f s" % (time.monotonic() - t))
                time.sleep(1.5)
                lines_after = guest_lines(g)
                res.check(lines_after > lines_before >= 0,
                          "kill %d: the append loop keeps going" % k,
                          "%d -> %d lines" % (lines_before, lines_after))
                rc, out = g.run("cat /tmp/busy.err /tmp/stat.err", timeout=20)
                res.check(rc == 0 and out.strip() == "",
                          "kill %d: the guest's loops saw no error" % k,
                          out.strip()[:200])
                rc, out = g.run("cd /mnt && md5sum %s" % " ".join(names),
                                timeout=30)
                seen = {l.split()[1]: l.split()[0] for l in out.splitlines()
                        if len(l.split()) == 2}
                res.check(rc == 0 and seen == before and all(
                    host_md5(os.path.join(c.shared_dir, n)) == before[n]
                    for n in names),
                          "kill %d: synced files intact in guest and host" % k)
                rc, out = g.run("echo fresh-%d > /mnt/new%d && cat /mnt/new%d"
                                % (k, k, k), timeout=30)
                res.check(rc == 0 and out.strip() == "fresh-%d" % k,
                          "kill %d: a new file is written and read back" % k)
                survived += res.failed == failed_before
            g.check("touch /tmp/go /tmp/stop; sleep 1")
            rc, out = g.run("cat /tmp/held.md5 /tmp/held.err", timeout=20)
            res.check(out.split()[:1] == [before["f1"]],
                      "a file opened before the kills still reads through "
                      "its old descriptor", out.strip()[:200])
            with open(os.path.join(c.shared_dir, "busy")) as f:
                lines = f.read().split("\n")
            tail = lines.pop()
            nums = [int(m.group(1)) for m in
                    (re.fullmatch(r"line-(\d+)", s) for s in lines) if m]
            whole = tail == "" and len(nums) == len(lines)
            dedup = sorted(set(nums))
            repeats = len(nums) - len(dedup)
            res.check(whole and dedup == list(range(1, len(dedup) + 1)) and
                      all(b >= a for a, b in zip(nums, nums[1:])),
                      "/mnt/busy: whole, consecutive lines",
                      "%d lines, %d served twice" % (len(nums), repeats))
            print("     /mnt/busy: %d lines, %d appended twice (a write cut "
                  "off by a kill is served again)" % (len(nums), repeats))
            sup.send_signal(signal.SIGTERM)
            try:
                rc = sup.wait(timeout=20)
            except Exception:  # noqa: BLE001
                rc = None
            res.check(rc == 0 and not children(sup.pid),
                      "SIGTERM stops the supervisor and its worker",
                      "exit %s" % rc)
            backend.procs = []
    except (vmlib.VmError, TimeoutError, OSError) as e:
        res.check(False, "the test ran", repr(e))
    for what, xs in (("new worker running", restart_s),
                     ("guest session resumed", resume_s)):
        if xs:
            xs = sorted(xs)
            print("     %s after the kill: median %.2f s, max %.2f s (%d kills)"
                  % (what, xs[len(xs) // 2], xs[-1], len(xs)))
    print("worker kills survived: %d of %d" % (survived, args.kills))
    return res.finish()


if __name__ == "__main__":
    sys.exit(main())
