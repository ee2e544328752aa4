#!/usr/bin/env python3
"""Slow / stuck subscriber (issue 6, faults). A coordinator with a small
per-subscriber queue (--subscriber-queue-limit=500); a raw gRPC Subscribe
that does not read for --stall-ms (the coordinator's writes to it block on
HTTP/2 flow control) and a healthy subscriber that reads all along; bump
storm clients (64 slots per Bump) meanwhile.

  - bumps are not blocked: the storm keeps being acknowledged while the
    stuck subscriber does not read (at least --min-acks);
  - memory stays bounded: the largest live queue never exceeds the limit
    (coherefs_coordinator_subscriber_queue_depth{stat="max"}, scraped
    throughout), the stuck subscriber is moved to the stored log
    (subscriber_overflows_total grows), the coordinator's RSS grows < 100 MiB;
  - then the stuck subscriber reads, and gets every change from the one
    after it subscribed up to the end, with no gap and no resync; the
    healthy one too.

  slow_subscriber_test.py --coordinator-bin=P --storm-bin=P [--stall-ms=6000]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faults_lib  # noqa: E402
from faults_lib import coordinator  # noqa: E402

QUEUE_LIMIT = 500


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def parse_stall(path):
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return None
    if not words:
        return None
    return {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--storm-bin", required=True)
    ap.add_argument("--stall-ms", type=int, default=6000)
    ap.add_argument("--min-acks", type=int, default=2000)
    args = ap.parse_args()
    args.coordinator_bin = os.path.abspath(args.coordinator_bin)
    args.storm_bin = os.path.abspath(args.storm_bin)
    res = faults_lib.Results()
    work = tempfile.mkdtemp(prefix="cohslow.", dir="/tmp")
    mport = faults_lib.free_port()
    procs = []
    try:
        with faults_lib.FaultCoordinator(
                args.coordinator_bin, work, extra_args=[
                    "--subscriber-queue-limit=%d" % QUEUE_LIMIT,
                    "--metrics-listen=127.0.0.1:%d" % mport]) as crd:
            # Slots exist before anyone subscribes (Resolve allocates).
            _, seq0, _ = faults_lib.snapshot_retry(args.storm_bin, crd.target)
            rss0 = rss_kib(crd.proc.pid)
            outs = {}
            for name, stall in (("stuck", args.stall_ms), ("healthy", 0)):
                outs[name] = os.path.join(work, name + ".out")
                p = subprocess.Popen([args.storm_bin, "stall",
                                      "--target=" + crd.target,
                                      "--stall-ms=%d" % stall,
                                      "--out=" + outs[name]])
                coordinator._live.add(p)
                procs.append(p)
            time.sleep(0.3)  # both subscribed
            st = faults_lib.Storm(args.storm_bin, crd.target, work, n=2,
                                  threads=2, keys=256, slots_per_bump=64)
            st.start()
            depth_max, overflows, rss_max = 0.0, 0.0, rss0
            storm_s = max(1.0, args.stall_ms / 1000.0 - 1.5)
            end = time.monotonic() + storm_s
            while time.monotonic() < end:
                m = faults_lib.scrape(mport)
                depth_max = max(depth_max, m.get(
                    'coherefs_coordinator_subscriber_queue_depth{stat="max"}',
                    0.0))
                overflows = m.get(
                    "coherefs_coordinator_subscriber_overflows_total", 0.0)
                rss_max = max(rss_max, rss_kib(crd.proc.pid))
                time.sleep(0.2)
            acks_during = len(st.acks()[0])
            st.stop()
            _, seq_end, _ = faults_lib.snapshot_retry(args.storm_bin,
                                                      crd.target)
            codes = []
            for p in procs:
                try:
                    codes.append(p.wait(90))
                except subprocess.TimeoutExpired:
                    codes.append(None)
            print("     storm: %d acks in %.1f s while one subscriber was "
                  "stuck; seqs %d..%d" % (acks_during, storm_s, seq0 + 1,
                                         seq_end))
            res.check("bumps go on while a subscriber is stuck (%d acks >= "
                       "%d)" % (acks_during, args.min_acks),
                       acks_during >= args.min_acks)
            res.check("largest live queue %d <= limit %d" % (
                depth_max, QUEUE_LIMIT), depth_max <= QUEUE_LIMIT)
            res.check("stuck subscriber moved to the stored log (%d "
                       "overflows)" % overflows, overflows >= 1)
            # ASan's quarantine holds freed memory for a while: scripts/
            # test-asan.sh sets COHEREFS_SANITIZED and the bound triples.
            bound_mib = 300 if os.environ.get("COHEREFS_SANITIZED") else 100
            res.check("coordinator RSS grew %d KiB (< %d MiB)" % (
                rss_max - rss0, bound_mib), rss_max - rss0 < bound_mib * 1024)
            for name in ("stuck", "healthy"):
                r = parse_stall(outs[name])
                ok = r is not None and r["gaps"] == 0 and \
                    r["resyncs"] == 0 and r["first"] == seq0 + 1 and \
                    r["last"] >= seq_end and \
                    r["received"] == r["last"] - r["first"] + 1
                res.check("%s subscriber got every change %d..%d with no "
                           "gap: %s" % (name, seq0 + 1, seq_end, r), ok)
            res.check("subscribers exited 0", codes == [0, 0], codes)
    finally:
        for p in procs:
            coordinator.stop_process(p, hard=True)
            coordinator._live.discard(p)
        shutil.rmtree(work, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    faults_lib.install_signal_handlers()
    sys.exit(main())
