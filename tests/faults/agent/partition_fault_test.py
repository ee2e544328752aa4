#!/usr/bin/env python3
"""Agent <-> coordinator partition (issue 6, faults bullet 3).

Topology (everything the test creates has a per-run unique name and is
removed on every exit path, including SIGTERM from a Bazel timeout):

   root netns                              netns cohp-<run>
   coordinator 10.231.X.Y+1:P -- veth --   agent A -> 10.231.X.Y+1:P
   agent B -> 10.231.X.Y+1:P    (.Y+2)     (nsenter --net only: its FUSE
   B's host mount, A's host mount          mount stays visible; metrics and
                                           admin on the namespace's lo)

The coherence checker (tests/coherence/checker.py, strict) runs its writer
on B's mount and its readers on A's mount while the link is cut
(`ip link set down` inside A's namespace) and healed, `cycles` times.
Checked per cycle:
  - A fences itself within its coordinator lease TTL (+1 s): its
    coherefs_agent_fenced{volume} gauge reads 1, and while fenced its
    replies grant no lease (leases_refused_total rises as its readers go on);
  - the coordinator expires A (agent_expirations_total rises);
  - B's strict writers are not blocked beyond A's lease: the longest writer
    op during the cut is <= TTL + lease max + margin + 2 s slack (printed);
  - after healing, A unfences and its table equals the coordinator's
    (`coherectl table diff`: no slot behind or ahead);
and over the whole run the checker finds 0 stale and 0 phantom observations.
Prints "partitions healed: N" and `N passed, N failed`. --long: 3 cycles
with the default 10 s TTL and 5 s leases (default: 1 cycle, 3 s / 2 s).
"""

import argparse
import atexit
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faultlib  # noqa: E402
import checker  # noqa: E402  (tests/coherence, path set by faultlib)
import testlib  # noqa: E402  (tests/, path set by faultlib)

NETNS_DIR = "/run/netns"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Netns:
    """A network namespace joined to the root one by a veth pair."""

    def __init__(self):
        run = "%d%04x" % (os.getpid() % 100000, random.randrange(1 << 16))
        self.name = "cohp-" + run
        self.host_if = "cph" + run[-8:]   # <= 15 characters
        self.ns_if = "cpn" + run[-8:]
        b = random.randrange(0, 64) * 4
        self.subnet = "10.231.%d" % random.randrange(256)
        self.host_ip = "%s.%d" % (self.subnet, b + 1)
        self.ns_ip = "%s.%d" % (self.subnet, b + 2)
        self.created = False

    def _ip(self, *args, ns=False):
        argv = ["ip"] + (["-n", self.name] if ns else []) + list(args)
        subprocess.run(argv, check=True, capture_output=True)

    def create(self):
        self._ip("netns", "add", self.name)
        self.created = True
        atexit.register(self.delete)
        self._ip("link", "add", self.host_if, "type", "veth", "peer", "name",
                 self.ns_if)
        self._ip("link", "set", self.ns_if, "netns", self.name)
        self._ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
        self._ip("link", "set", self.host_if, "up")
        self._ip("addr", "add", self.ns_ip + "/30", "dev", self.ns_if, ns=True)
        self._ip("link", "set", self.ns_if, "up", ns=True)
        self._ip("link", "set", "lo", "up", ns=True)

    def cut(self):
        self._ip("link", "set", self.ns_if, "down", ns=True)

    def heal(self):
        self._ip("link", "set", self.ns_if, "up", ns=True)

    def wrap(self, argv):
        # --net only: the agent's FUSE mount must land in our mount ns.
        return ["nsenter", "--net=%s/%s" % (NETNS_DIR, self.name)] + argv

    def delete(self):
        if not self.created:
            return
        # Deleting the namespace destroys the veth pair (both ends).
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if],
                       capture_output=True)
        self.created = False


def scrape(url, ns=None):
    """Prometheus text -> {'name{labels}': value}; through the namespace."""
    argv = ["/usr/bin/python3", "-c",
            "import sys, urllib.request\n"
            "try:\n"
            "    print(urllib.request.urlopen(sys.argv[1], timeout=3)"
            ".read().decode())\n"
            "except OSError:\n"
            "    pass", url]
    if ns is not None:
        argv = ns.wrap(argv)
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return testlib.parse_metrics(out)


def metric(vals, name, **labels):
    total = None
    for key, v in vals.items():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(\{(.*)\})?", key)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(have.get(k) == w for k, w in labels.items()):
            total = (total or 0.0) + v
    return total


def wait_until(pred, deadline_s, step=0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


class PartitionDriver(checker.HostDriver):
    """HostDriver whose agent "a" runs in the namespace; the writer works on
    B's mount, the reader on A's, and a side thread runs the partition
    cycles."""

    def __init__(self, args, ns, cfg_dir, **kw):
        self.args = args
        self.ns = ns
        self.cfg_dir = cfg_dir
        self.ports = {"a_metrics": free_port(), "a_admin": free_port(),
                      "b_metrics": free_port()}
        self.coord_metrics = free_port()
        self.cycles_info = []
        self.ops_done = 0
        super().__init__(**kw)

    def _agent_argv(self, name, mnt):
        argv = super()._agent_argv(name, mnt)
        cfg = os.path.join(self.cfg_dir, "agent_%s.json" % name)
        with open(cfg, "w") as f:
            json.dump({"lease_ttl_ms": self.args.ttl_ms}, f)
        argv += ["--config=" + cfg,
                 "--lease-max-ms=%d" % self.args.lease_max_ms]
        if self.args.insecure_agent:
            argv.append("--insecure")
        argv += self.args.agent_arg
        # The coordinator listens on the root end of the veth only; B
        # reaches it there too (locally, so the cut never touches B).
        argv = [a.replace("--coordinator=127.0.0.1:",
                          "--coordinator=%s:" % self.ns.host_ip)
                for a in argv]
        if name == "a":
            argv += ["--metrics-listen=127.0.0.1:%d" % self.ports["a_metrics"],
                     "--admin-listen=127.0.0.1:%d" % self.ports["a_admin"]]
            return self.ns.wrap(argv)
        return argv + ["--metrics-listen=127.0.0.1:%d" %
                       self.ports["b_metrics"]]

    def _start(self):
        super()._start()
        self.mounts = [self.mounts[1], self.mounts[0]]  # writer on B

    # --- observations
    def a_metrics(self):
        return scrape("http://127.0.0.1:%d/metrics" % self.ports["a_metrics"],
                      self.ns)

    def coord_metrics_now(self):
        return scrape("http://127.0.0.1:%d/metrics" % self.coord_metrics)

    def table_diff(self):
        argv = [self.args.coherectl_bin, "table", "diff", "--volume=default",
                "--agent=127.0.0.1:%d" % self.ports["a_admin"], "--json",
                "--coordinator=%s:%d" % (self.ns.host_ip,
                                         self.coordinator.port)]
        if self.args.insecure_ctl:
            argv.append("--insecure")
        p = subprocess.run(self.ns.wrap(argv), capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr

    # --- the workload: HostDriver.run's readers and writer, but the writer
    # stops `tail_ops` ops after the last partition cycle ended (the op
    # count alone cannot size a run whose op rate strict waits decide).
    def run(self, seed, ops):
        rec = checker.Recorder(["r1"])
        mount_w, mount_r = self.mounts
        done = threading.Event()

        def reader():
            while not rec.stop:
                round_start = time.monotonic()
                out = []
                for path in checker.PATHS:
                    for kind in checker.observations_of(path):
                        s = time.monotonic()
                        v = checker.observe_local(mount_r, path, kind)
                        out.append({"who": "r1", "op": kind, "path": path,
                                    "start": s, "end": time.monotonic(),
                                    "result": v})
                rec.add(out)
                rec.round_done("r1", round_start)
                time.sleep(self.round_pause_s)

        def cycles():
            try:
                for i in range(self.args.cycles):
                    time.sleep(self.args.before_s)
                    if rec.stop:
                        return
                    try:
                        self.cycles_info.append(self.partition_cycle())
                    except Exception as e:  # reported by the main thread
                        self.cycles_info.append({"error": repr(e)})
            finally:
                done.set()

        class Enough(Exception):
            pass
        after = []

        def before_op(k):
            self._writer_op = k
            if done.is_set():
                after.append(k)
                if len(after) > self.args.tail_ops:
                    raise Enough()

        self._writer_op = 0
        threads = [threading.Thread(target=reader, daemon=True),
                   threading.Thread(target=cycles, daemon=True)]
        for t in threads:
            t.start()
        try:
            checker.run_writer(rec, seed, ops, self.backing,
                               lambda op: checker.apply_local(mount_w, op),
                               before_op=before_op)
        except Enough:
            pass
        finally:
            rec.stop = True
            for t in threads:
                t.join(120)
        self.ops_done = self._writer_op
        return rec.records

    def partition_cycle(self):
        a = self.args
        info = {}
        before_a = self.a_metrics()
        before_c = self.coord_metrics_now()
        info["refused_before"] = metric(
            before_a, "coherefs_agent_leases_refused_total") or 0.0
        info["expired_before"] = metric(
            before_c, "coherefs_coordinator_agent_expirations_total") or 0.0
        info["fenced_before"] = metric(before_a, "coherefs_agent_fenced")
        t_cut = time.monotonic()
        self.ns.cut()
        info["cut_at"] = t_cut
        # Both watched at once, each timed from the cut.
        info["fence_s"] = info["expire_s"] = None
        end = t_cut + a.ttl_ms / 1000 + 10
        while time.monotonic() < end and (info["fence_s"] is None or
                                          info["expire_s"] is None):
            if info["fence_s"] is None and metric(
                    self.a_metrics(), "coherefs_agent_fenced") == 1:
                info["fence_s"] = time.monotonic() - t_cut
            if info["expire_s"] is None and (metric(
                    self.coord_metrics_now(),
                    "coherefs_coordinator_agent_expirations_total") or
                    0) > info["expired_before"]:
                info["expire_s"] = time.monotonic() - t_cut
            time.sleep(0.05)
        time.sleep(a.hold_s)  # readers on A go on while it is fenced
        info["refused_during"] = metric(
            self.a_metrics(), "coherefs_agent_leases_refused_total") or 0.0
        t_heal = time.monotonic()
        self.ns.heal()
        info["heal_at"] = t_heal
        info["unfence_s"] = wait_until(
            lambda: metric(self.a_metrics(), "coherefs_agent_fenced") == 0,
            30)
        time.sleep(0.5)
        info["diff"] = self.table_diff()
        info["writer_op_after_heal"] = self._writer_op
        return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    faultlib.add_binary_args(ap)
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--cycles", type=int)
    ap.add_argument("--ops", type=int)
    ap.add_argument("--ttl-ms", type=int)
    ap.add_argument("--lease-max-ms", type=int)
    ap.add_argument("--hold-s", type=float, default=2.0,
                    help="how long the cut lasts after the coordinator "
                    "expired A")
    ap.add_argument("--before-s", type=float, default=3.0,
                    help="workload time before each cut")
    ap.add_argument("--tail-ops", type=int, default=30,
                    help="writer ops after the last heal")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--save", help="write records and cycle facts (JSON)")
    args = faultlib.binaries(ap.parse_args())
    cycles = args.cycles or (3 if args.long else 1)
    args.ttl_ms = args.ttl_ms or (10000 if args.long else 3000)
    args.lease_max_ms = args.lease_max_ms or (5000 if args.long else 2000)
    args.cycles = cycles
    ops = args.ops or 100000  # the writer stops tail_ops after the cycles
    args.insecure_agent = faultlib.supports_flag(args.agent_bin, "insecure")
    args.insecure_ctl = faultlib.supports_flag(args.coherectl_bin, "insecure")
    coord_args = []
    if faultlib.supports_flag(args.coordinator_bin, "insecure"):
        coord_args.append("--insecure")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    res = faultlib.Results()
    ns = Netns()
    cfg_dir = tempfile.mkdtemp(prefix="cohpart.", dir="/tmp")
    try:
        ns.create()
        coord_args.append("--listen=%s:0" % ns.host_ip)
        drv = PartitionDriver(
            args, ns, cfg_dir, agent_bin=args.agent_bin, cache="always",
            readers=1, coordinator_bin=args.coordinator_bin,
            coherence="strict", keep=args.keep,
            coordinator_args=coord_args)
        drv.coordinator_args.append("--metrics-listen=127.0.0.1:%d" %
                                    drv.coord_metrics)
        with drv:
            t0 = time.monotonic()
            records = drv.run(seed=7, ops=ops)
            run_s = time.monotonic() - t0
            healed = 0
            failed_before = res.failed
            margin = 0.1 + 2.0
            bound = (args.ttl_ms + args.lease_max_ms) / 1000 + margin
            for i, info in enumerate(drv.cycles_info, 1):
                if "error" in info:
                    res.check(False, "cycle %d ran" % i, info["error"])
                    continue
                ttl = args.ttl_ms / 1000
                res.check(info["fenced_before"] == 0,
                          "cycle %d: A unfenced before the cut" % i)
                res.check(info["fence_s"] is not None and
                          info["fence_s"] <= ttl + 1.0,
                          "cycle %d: A fenced itself within its lease" % i,
                          "%s s after the cut (TTL %.1f s)" % (
                              _fmt(info["fence_s"]), ttl))
                res.check(info["refused_during"] > info["refused_before"],
                          "cycle %d: fenced A granted no leases "
                          "(leases_refused_total rose)" % i,
                          "%d -> %d" % (info["refused_before"],
                                        info["refused_during"]))
                res.check(info["expire_s"] is not None,
                          "cycle %d: the coordinator expired A" % i,
                          "%s s after the cut" % _fmt(info["expire_s"]))
                during = [r for r in records if r["who"] == "w" and
                          r["op"] != "initial" and
                          r["end"] >= info["cut_at"] and
                          r["start"] <= info["heal_at"]]
                longest = max((r["end"] - r["start"] for r in during),
                              default=None)
                res.check(longest is not None and longest <= bound,
                          "cycle %d: B's strict writers not blocked beyond "
                          "A's lease" % i,
                          "%d writer ops during the cut, longest %s s "
                          "(bound %.1f s)" % (len(during), _fmt(longest),
                                              bound))
                res.check(info["unfence_s"] is not None,
                          "cycle %d: A unfenced after healing" % i,
                          "%s s after the heal" % _fmt(info["unfence_s"]))
                rc, out = info["diff"]
                agree = rc == 0 and '"behind"' not in out and \
                    '"ahead"' not in out
                try:
                    j = json.loads(out)
                    agree = agree and _diff_agrees(j)
                except ValueError:
                    agree = False
                res.check(agree, "cycle %d: after healing A's table equals "
                          "the coordinator's (coherectl table diff)" % i,
                          out.strip()[:300])
                res.check(drv.ops_done > info["writer_op_after_heal"],
                          "cycle %d: healed while the workload ran" % i,
                          "writer at op %d at the heal, %d in all" % (
                              info["writer_op_after_heal"], drv.ops_done))
                healed += res.failed == failed_before
                failed_before = res.failed
            res.check(len(drv.cycles_info) == cycles,
                      "every partition cycle ran",
                      "%d of %d" % (len(drv.cycles_info), cycles))
            report = checker.check(records, "strict")
            s = report.summary()
            res.check(report.ok, "checker (strict) across the partitions",
                      "%s; %d records in %.0f s" % (
                          json.dumps(s)[:300], len(records), run_s))
            if not report.ok:
                print(report.format())
                for i, info in enumerate(drv.cycles_info, 1):
                    print("cycle %d: cut at %.3f, heal at %.3f" % (
                        i, info.get("cut_at", 0), info.get("heal_at", 0)))
            if args.save:
                with open(args.save, "w") as f:
                    json.dump({"records": records,
                               "cycles": drv.cycles_info}, f, default=str)
                print(drv.agent_log_tail())
        print("partitions healed: %d" % healed)
    except (RuntimeError, OSError, subprocess.CalledProcessError,
            TimeoutError) as e:
        traceback.print_exc()
        res.check(False, "partition test ran", repr(e))
    finally:
        ns.delete()
        shutil.rmtree(cfg_dir, ignore_errors=True)
    return res.finish()


def _fmt(v):
    return "never" if v is None else "%.2f" % v


def _diff_agrees(j):
    """True unless the JSON names a slot behind/ahead or agree=false."""
    text = json.dumps(j)
    return '"agree": false' not in text and '"behind"' not in text and \
        '"ahead"' not in text


if __name__ == "__main__":
    sys.exit(main())
