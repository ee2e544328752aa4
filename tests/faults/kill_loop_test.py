#!/usr/bin/env python3
"""Coordinator kill loop (issue 6, faults): a coordinator, two agents on
host mounts running the coherence checker in strict mode (writer on one
mount, readers on the other), and bump_storm clients bumping shared slots
over real gRPC. The coordinator is killed --kills times and restarted on the
same port and data dir, each time either

  - SIGKILL at a random moment (0.2..1.5 s after the workload made progress
    since the last restart), or
  - by a failpoint at an exact window, armed for that run only, at a random
    hit count: store.commit.before_sync (batch not yet written),
    store.commit.after_sync (durable, no caller told), core.fanout (durable,
    subscribers half published), service.bump.reply (durable, the Bump reply
    not sent): the process aborts (SIGABRT) by itself.

After every kill, before the restart, the acknowledged bumps are read; after
the restart a Snapshot must hold every one of them (no acknowledged bump
lost), every slot's version must be >= its version in the previous snapshot
and the epoch must be the previous + 1 (versions only grow, also across
epochs). Each client thread's acks per slot must grow. At the end the
agents must have resubscribed and resynchronised (coherectl table diff: no
slot behind or ahead, not fenced) and the checker must find 0 stale and 0
phantom observations across all the restarts. Prints "kills survived: N"
and "N passed, N failed". --stream-faults also arms STREAM_FAULTS on every
start (subscribers spilled to the stored log, stream writes failing).

  kill_loop_test.py --coordinator-bin=P --agent-bin=P --storm-bin=P
                    --ctl-bin=P [--kills=5] [--seed=1] [--stream-faults]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faults_lib  # noqa: E402
from faults_lib import coordinator  # noqa: E402,F401
import checker  # noqa: E402  (tests/coherence, on the path via faults_lib)

# --stream-faults: on every start, a fifth of the fan-outs to a subscriber
# go through the stored log instead of its queue, and 3% of stream writes
# fail (the stream ends UNAVAILABLE): agents must resubscribe with no gap.
STREAM_FAULTS = "core.fanout=20%error;service.stream.send=3%error"
WINDOWS = ("store.commit.before_sync", "store.commit.after_sync",
           "core.fanout", "service.bump.reply")
LEASE_MAX_MS, MARGIN_MS = 10, 15


class Driver(checker.HostDriver):
    """HostDriver whose coordinator can arm failpoints and whose agents
    serve the admin API (for coherectl table diff)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.admin = {"a": faults_lib.free_port(), "b": faults_lib.free_port()}

    def _agent_argv(self, name, mnt):
        return super()._agent_argv(name, mnt) + [
            "--admin-listen=127.0.0.1:%d" % self.admin[name]]

    def _start(self):
        real = coordinator.Coordinator
        checker.coordinator.Coordinator = faults_lib.FaultCoordinator
        try:
            super()._start()
        finally:
            checker.coordinator.Coordinator = real


def run_workload(d, seed, stop, progress, errors):
    """The checker's writer and two readers on the driver's mounts until
    `stop` is set; progress[0] counts finished writer ops. Returns records."""
    names = ["r1", "r2"]
    rec = checker.Recorder(names)
    mount_a, mount_b = d.mounts

    def reader(who):
        while not rec.stop:
            round_start = time.monotonic()
            out = []
            for path in checker.PATHS:
                for kind in checker.observations_of(path):
                    s = time.monotonic()
                    v = checker.observe_local(mount_b, path, kind)
                    e = time.monotonic()
                    out.append({"who": who, "op": kind, "path": path,
                                "start": s, "end": e, "result": v})
            rec.add(out)
            rec.round_done(who, round_start)
            time.sleep(0.001)

    threads = [threading.Thread(target=reader, args=(n,), daemon=True)
               for n in names]
    for t in threads:
        t.start()
    try:
        wl = checker.Workload(seed)
        rec.add([{"who": "w", "op": "initial", "path": None,
                  "start": checker.NEG_INF, "end": checker.NEG_INF,
                  "result": 0, "after": checker.truth(d.backing,
                                                      checker.PATHS)}])
        rec.wait_observed(time.monotonic(), 60)
        while not stop.is_set():
            op = wl.next()
            start = time.monotonic()
            try:
                checker.apply_local(mount_a, op)
            except OSError as e:
                errors.append("writer %s %s: %r at %.3f" % (
                    op["op"], op["path"], e, time.monotonic()))
                break
            end = time.monotonic()
            rec.add([{"who": "w", "op": op["op"], "path": op["path"],
                      "start": start, "end": end, "result": 0,
                      "after": checker.truth(d.backing, checker.touched(op))}])
            rec.wait_observed(end, 60)
            progress[0] += 1
    finally:
        rec.stop = True
        for t in threads:
            t.join(30)
    return rec.records


def table_diff_clean(ctl, admin_ports, within_s=20):
    """Waits until every agent agrees with the coordinator; the last doc."""
    argv = ctl + ["--json", "table", "diff", "--volume=default"] + [
        "--agent=127.0.0.1:%d" % p for p in admin_ports]
    end = time.monotonic() + within_s
    doc = None
    while time.monotonic() < end:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        try:
            doc = json.loads(out.stdout)
        except ValueError:
            doc = {"raw": out.stdout + out.stderr}
        agents = doc.get("agents", [])
        if out.returncode == 0 and agents and all(
                not a.get("fenced", True) and a.get("differ") == [] and
                "error" not in a for a in agents):
            return True, doc
        time.sleep(0.3)
    return False, doc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--storm-bin", required=True)
    ap.add_argument("--ctl-bin", required=True)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--stream-faults", action="store_true",
                    help="also arm " + STREAM_FAULTS + " on every start")
    ap.add_argument("--agent-arg", action="append", default=[],
                    help="extra coherefs-agent argument (repeatable)")
    args = ap.parse_args()
    for b in ("coordinator_bin", "agent_bin", "storm_bin", "ctl_bin"):
        setattr(args, b, os.path.abspath(getattr(args, b)))
    rng = random.Random(args.seed)
    if args.stream_faults:
        faults_lib.FaultCoordinator.base_failpoints = STREAM_FAULTS
    res = faults_lib.Results()
    grace_ms = LEASE_MAX_MS + MARGIN_MS + 1500
    strict_args = ["--lease-max-ms=%d" % LEASE_MAX_MS,
                   "--lease-margin-ms=%d" % MARGIN_MS]
    kills = []  # dicts: how, failpoint, exit code, epochs
    errors = []
    with Driver(args.agent_bin, "always", strict_args + args.agent_arg,
                coherence="strict",
                readers=2, coordinator_bin=args.coordinator_bin,
                coordinator_args=["--strict-grace=%dms" % grace_ms],
                keep=args.keep) as d:
        crd = d.coordinator
        storm = faults_lib.Storm(args.storm_bin, crd.target, d.work,
                                 n=args.clients)
        storm.start()
        epoch, _, prev = faults_lib.snapshot_retry(args.storm_bin, crd.target)
        res.check("first start: epoch %d" % epoch, epoch >= 1)
        stop = threading.Event()
        progress = [0]
        records_box = []

        def workload():
            records_box.append(run_workload(d, args.seed, stop, progress,
                                            errors))
        wt = threading.Thread(target=workload, daemon=True)
        wt.start()
        lost_total, shrunk_total = [], []
        try:
            while len(kills) < args.kills:
                # Progress since the last restart: agents are back, clients
                # bump again. (A failpoint may end the run before that: then
                # that is this kill.)
                base_ops = progress[0]
                base_acks = len(storm.acks()[0])
                end = time.monotonic() + 30
                while (progress[0] <= base_ops or
                       len(storm.acks()[0]) <= base_acks) and \
                        crd.proc.poll() is None and \
                        time.monotonic() < end and not errors:
                    time.sleep(0.02)
                if errors or time.monotonic() >= end:
                    errors.append("no progress before kill %d" %
                                  (len(kills) + 1))
                    break
                how = crd.failpoints.split("=")[0] if crd.failpoints else \
                    "SIGKILL"
                if crd.failpoints:
                    code = crd.wait_exit(15)
                    if code is None:
                        how += " (not reached in 15 s; SIGKILL)"
                        code = crd.stop(hard=True)
                    else:
                        crd.forget()
                else:
                    time.sleep(rng.uniform(0.2, 1.5))
                    code = crd.stop(hard=True)
                round_kills = [{"how": how, "exit": code}]
                starts_before = crd.starts
                # Restart until a snapshot is taken; a failpoint may end a
                # run even before that (each such death is a kill too).
                while True:
                    # Down: nothing new can be acknowledged now.
                    acks, _ = storm.acks()
                    if len(kills) + len(round_kills) < args.kills and \
                            rng.random() < 0.5:
                        # Hundreds of commits a second: the run lasts
                        # long enough for agents to resync first (a strict
                        # change fenced for 10 s fails with EIO).
                        crd.failpoints = "%s=%d*off->panic" % (
                            rng.choice(WINDOWS), rng.randint(50, 400))
                    else:
                        crd.failpoints = ""
                    time.sleep(rng.uniform(0.0, 0.4))
                    snap = None
                    try:
                        crd.start()
                        snap = faults_lib.snapshot_retry(
                            args.storm_bin, crd.target,
                            alive=lambda: crd.proc.poll() is None)
                    except (RuntimeError, subprocess.TimeoutExpired):
                        if crd.proc is None or crd.proc.poll() is None:
                            raise
                    if snap is not None:
                        break
                    round_kills.append({
                        "how": crd.failpoints.split("=")[0] +
                        " (before the snapshot)", "exit": crd.proc.returncode})
                    crd.forget()
                e2, _, versions = snap
                lost = faults_lib.lost_acks(acks, versions)
                shrunk = [(s, prev[s], versions[s]) for s in range(len(prev))
                          if s >= len(versions) or versions[s] < prev[s]]
                lost_total += lost
                shrunk_total += shrunk
                for rk in round_kills:
                    rk.update({"kill": len(kills) + 1, "epoch": e2,
                               "acks": len(acks), "lost": len(lost),
                               "shrunk": len(shrunk)})
                    kills.append(rk)
                    print("kill %d: %s, exit %s, epoch now %d, %d acks so "
                          "far, %d lost, %d versions shrank" % (
                              rk["kill"], rk["how"], rk["exit"], e2,
                              len(acks), len(lost), len(shrunk)), flush=True)
                if e2 != epoch + (crd.starts - starts_before):
                    errors.append("epoch %d after %d and %d starts" % (
                        e2, epoch, crd.starts - starts_before))
                epoch, prev = e2, versions
            # A last stretch of normal running after the last restart.
            end = time.monotonic() + 30
            base = progress[0]
            while progress[0] < base + 20 and time.monotonic() < end and \
                    not errors:
                time.sleep(0.05)
        finally:
            stop.set()
            wt.join(90)
            codes = storm.stop()
            if crd.proc is None or crd.proc.poll() is not None:
                # Ended by a failpoint after the loop stopped early.
                crd.forget()
                crd.failpoints = ""
                crd.start()
        acks, done = storm.acks()
        records = records_box[0] if records_box else []
        survived = sum(1 for k in kills if k["lost"] == 0 and
                       k["shrunk"] == 0)
        print("kills survived: %d" % survived)
        by_how = {}
        for k in kills:
            h = k["how"].split(" ")[0]
            by_how[h] = by_how.get(h, 0) + 1
        print("kills by kind: %s" % json.dumps(by_how, sort_keys=True))
        print("storm: %s" % "; ".join(done))
        res.check("no workload error", not errors, errors)
        res.check("%d kills done" % args.kills, len(kills) >= args.kills,
                   len(kills))
        fp_kills = [k for k in kills if k["how"].split(" (before")[0] in
                    WINDOWS]
        res.check("failpoint kills (%d) died by SIGABRT" % len(fp_kills),
                   all(k["exit"] == -6 for k in fp_kills), fp_kills)
        res.check("no acknowledged bump lost (%d acks)" % len(acks),
                   not lost_total, lost_total[:10])
        res.check("versions never shrank across restarts", not shrunk_total,
                   shrunk_total[:10])
        bad = faults_lib.non_monotonic(acks)
        res.check("each client's acked versions grow per slot", not bad,
                   bad[:10])
        res.check("storm clients exited cleanly", codes and
                   all(c == 0 for c in codes), codes)
        final_epoch, _, final = faults_lib.snapshot_retry(args.storm_bin,
                                                          crd.target)
        res.check("final snapshot holds every ack",
                   not faults_lib.lost_acks(acks, final))
        res.check("epoch counts every start (%d starts, epoch %d)" % (
            crd.starts, final_epoch), final_epoch == crd.starts)
        ctl = faults_lib.ctl_base(args.ctl_bin, crd.target)
        ok, doc = table_diff_clean(ctl, [d.admin["a"], d.admin["b"]])
        res.check("agents resynchronised (table diff clean, unfenced)", ok,
                   json.dumps(doc)[:600])
        if args.stream_faults:
            log = crd.log_text()
            fired = {n: log.count("failpoint fired\" failpoint=" + n)
                     for n in ("core.fanout", "service.stream.send")}
            res.check("stream faults fired: %s" % fired,
                       all(v > 0 for v in fired.values()))
        if errors or not ok:
            print(d.agent_log_tail(30))
    rep = checker.check(records, "strict")
    print(rep.format(limit=5))
    s = rep.summary()
    writer_ops = sum(1 for r in records if r["who"] == "w") - 1
    res.check("checker strict across %d kills: %d observations, %d writer "
               "ops, 0 stale, 0 phantom" % (len(kills), s["observations"],
                                           writer_ops),
               rep.ok and s["observations"] > 0 and writer_ops > 0 and
               s["unmodelled"] == 0,
               "%d stale, %d phantom" % (s["stale"], s["phantoms"]))
    return res.finish()


if __name__ == "__main__":
    faults_lib.install_signal_handlers()
    sys.exit(main())
