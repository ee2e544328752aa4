"""Shared pieces of the coordinator fault tests (Python stdlib only).

- Results: "ok/FAIL" lines and the final "N passed, N failed".
- FaultCoordinator: tests/coherence/coordinator.py's Coordinator whose next
  start can arm failpoints (COHEREFS_FAILPOINTS in its environment only),
  and that can wait for a failpoint to end it.
- Storm: bump_storm clients (tests/faults/bump_storm.cc) and the check of
  their acknowledged bumps against a Snapshot.
- metrics(): one scrape of a coordinator's /metrics.
Every process is started by this module or the coherence harness and only
ever signalled by its PID.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.realpath(__file__))
COHERENCE = os.path.join(os.path.dirname(HERE), "coherence")
sys.path.insert(0, COHERENCE)
import coordinator  # noqa: E402  (tests/coherence/coordinator.py)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from testlib import Results, free_port, parse_metrics  # noqa: E402,F401  (re-exported)

_env_lock = threading.Lock()


class FaultCoordinator(coordinator.Coordinator):
    """A Coordinator whose start() passes `failpoints` (or none) to the new
    process. The variable is set in os.environ only while Popen runs, under
    a lock; start it from one thread at a time."""

    # Armed on every start, before `failpoints` (which is per start).
    base_failpoints = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failpoints = ""

    def start(self, deadline_s=20):
        spec = ";".join(f for f in (self.base_failpoints, self.failpoints)
                        if f)
        with _env_lock:
            old = os.environ.pop("COHEREFS_FAILPOINTS", None)
            if spec:
                os.environ["COHEREFS_FAILPOINTS"] = spec
            try:
                super().start(deadline_s)
            finally:
                os.environ.pop("COHEREFS_FAILPOINTS", None)
                if old is not None:
                    os.environ["COHEREFS_FAILPOINTS"] = old

    def wait_exit(self, timeout_s):
        """The exit code if the process ended within timeout_s, else None."""
        p = self.proc
        try:
            return p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def forget(self):
        """After the process ended by itself: reap and drop it."""
        p = self.proc
        if p is not None:
            p.wait(5)
            coordinator._live.discard(p)
        self.proc = None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def scrape(port):
    """name{labels} -> float from the coordinator's /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=5) as r:
        return parse_metrics(r.read().decode())


def snapshot(storm_bin, target, volume="default", timeout=15):
    """(epoch, committed_seq, [version per slot]) from the coordinator."""
    out = subprocess.run([storm_bin, "snapshot", "--target=" + target,
                          "--volume=" + volume], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError("snapshot failed: %s" % out.stderr.strip())
    lines = out.stdout.splitlines()
    head = lines[0].split()
    versions = [int(l.split()[1]) for l in lines[1:]]
    return int(head[1]), int(head[3]), versions


def snapshot_retry(storm_bin, target, volume="default", within_s=20,
                   alive=None):
    """snapshot(), retried for within_s; gives up at once when alive() (the
    coordinator process is running) turns false."""
    end = time.monotonic() + within_s
    while True:
        try:
            return snapshot(storm_bin, target, volume)
        except (RuntimeError, subprocess.TimeoutExpired):
            if time.monotonic() > end or (alive is not None and not alive()):
                raise
            time.sleep(0.1)


class Storm:
    """n bump_storm clients; each writes its acks to its own file."""

    def __init__(self, storm_bin, target, workdir, n=2, threads=2, keys=16,
                 slots_per_bump=1, volume="default"):
        self.bin = storm_bin
        self.files = [os.path.join(workdir, "storm%d.acks" % i)
                      for i in range(n)]
        self.procs = []
        self.args = ["--target=" + target, "--volume=" + volume,
                     "--threads=%d" % threads, "--keys=%d" % keys,
                     "--slots-per-bump=%d" % slots_per_bump]
        self.logs = [os.path.join(workdir, "storm%d.log" % i)
                     for i in range(n)]

    def start(self):
        for f, log in zip(self.files, self.logs):
            with open(log, "ab") as lf:
                p = subprocess.Popen([self.bin, "storm", "--out=" + f] +
                                     self.args, stdout=lf, stderr=lf,
                                     stdin=subprocess.DEVNULL)
            coordinator._live.add(p)
            self.procs.append(p)

    def stop(self):
        """SIGTERM, wait; returns the exit codes."""
        codes = []
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            codes.append(coordinator.stop_process(p, hard=False, grace_s=15))
            coordinator._live.discard(p)
        self.procs = []
        return codes

    def acks(self):
        """[(client, thread, slot, version, seq)] in each file's order, and
        the 'done' lines."""
        out, done = [], []
        for i, f in enumerate(self.files):
            try:
                with open(f) as fh:
                    text = fh.read()
            except OSError:
                continue
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 5 and parts[0] == "ack":
                    out.append((i, int(parts[1]), int(parts[2]),
                                int(parts[3]), int(parts[4])))
                elif parts and parts[0] == "done":
                    done.append(line)
        return out, done


def max_acked(acks):
    """slot -> highest acknowledged version."""
    m = {}
    for _, _, slot, version, _ in acks:
        if version > m.get(slot, 0):
            m[slot] = version
    return m


def lost_acks(acks, versions):
    """Acknowledged (slot, version) above the snapshot's version."""
    return [(slot, v) for slot, v in max_acked(acks).items()
            if slot >= len(versions) or versions[slot] < v]


def non_monotonic(acks):
    """Per client thread and slot, acks whose version did not grow."""
    last, bad = {}, []
    for client, thread, slot, version, seq in acks:
        key = (client, thread, slot)
        if key in last and version <= last[key]:
            bad.append((key, last[key], version))
        last[key] = version
    return bad


def ctl_base(ctl_bin, target):
    """coherectl argv prefix; --insecure when this build has TLS."""
    argv = [ctl_bin, "--coordinator=" + target]
    try:
        h = subprocess.run([ctl_bin, "--help"], capture_output=True,
                           text=True, timeout=10)
        if "insecure" in h.stdout + h.stderr:
            argv.append("--insecure")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return argv


def install_signal_handlers():
    """SIGTERM/SIGINT (a Bazel timeout, Ctrl-C) -> SystemExit, so `with`
    blocks and finally clauses stop what the test started."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
