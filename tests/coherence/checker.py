#!/usr/bin/env python3
"""Coherence checker: randomized metadata changes by one writer, observations
by readers on another client of the same directory, and a check of every
observation against the writer's history (issue 4's proof harness).

Records (plain dicts, JSON-friendly) are {who, op, path, start, end, result}:
  - writer ops (who "w"): op in OP_KINDS, result 0, plus "after": {path:
    {obs_kind: value}} -- the TRUE state of every path the op touched, read
    on the host's backing directory after the op returned (the writer is the
    only mutator, so nothing can change it in between). The first record is
    op "initial" with start = end = -inf and "after" for every path.
  - observations (who "r1", "r2", ...): op in OBS_KINDS ("stat", "readlink",
    "getxattr"), result the value seen, in the same encoding as "after".
start/end are host time.monotonic() seconds taken around the operation.

The check (a pure function of the records, `check`): the writer's ops are
sequential, so per (path, obs kind) the states form a list s0, s1, ... where
s_k became visible somewhere inside op k's [start, end]. An observation O
may legitimately see any state current at some instant of [O.start, O.end]:
from the newest s_k whose op ENDED before O.start, up to the newest s_k
whose op STARTED before O.end (and, while an op overlaps O, any field-wise mix of the states
before and after it: one syscall may publish mode/size/mtime one at a
time -- write(2) sets mtime before size). Anything older is stale; its staleness is
O.start - end of the op that superseded the state seen. A value no state
ever had is a "phantom" (always an error; the report names the other paths
that had it: typically a stale dentry still resolving to a moved inode).
  strict:  every stale observation is a violation.
  bounded: staleness is reported (count, max, p50, p99, max per change kind).
Per change kind the report also gives "missed": for every op whose effect an
observation starting after the op returned did not show, O.start - op end
(the staleness figure attributes a stale read only to the FIRST change it
missed; "missed" charges every change it missed).

CLI:  checker.py host --agent-bin=PATH [--cache=always] [--ops=2000]
                         [--coordinator-bin=PATH --coherence=strict|bounded|off]
      checker.py vm [--backend=virtiofsd] [--cache=always] [--ops=30]
                    [--backend=coherefs --agent-sockets=per-guest
                     --coordinator-bin=PATH --coherence=strict]
      checker.py check RECORDS.json [--mode=strict|bounded]
Drivers are in this file too (HostDriver, VmDriver); see README.md.
"""

import argparse
import bisect
import errno
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import coordinator  # noqa: E402  (tests/coherence/coordinator.py)

OP_KINDS = ("chmod", "touch", "append", "rename", "create", "unlink",
            "symlink", "setxattr")
OBS_KINDS = ("stat", "readlink", "getxattr")
XATTR = "user.coh"
ENOENT = "ENOENT"
ENODATA = "ENODATA"
NEG_INF = float("-inf")

# ---------------------------------------------------------------- the check


def _histories(records):
    """(path, obs kind) -> [(start, end, value, op)], consecutive values
    distinct (an op that left a value unchanged did not supersede it)."""
    hist = {}
    writes = sorted((r for r in records if r["who"] == "w"),
                    key=lambda r: r["start"])
    for r in writes:
        for path, kinds in r["after"].items():
            for kind, value in kinds.items():
                h = hist.setdefault((path, kind), [])
                if h and h[-1][2] == value:
                    continue
                h.append((r["start"], r["end"], value, r["op"]))
    return hist


def _mix_of(before, after, seen):
    """Whether seen takes each space-separated field from before or after."""
    b, a, s = before.split(" "), after.split(" "), seen.split(" ")
    return len(b) == len(a) == len(s) and all(
        x in (y, z) for x, y, z in zip(s, b, a))


def _percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1,
            max(0, int(math.ceil(q * len(sorted_values))) - 1))
    return sorted_values[i]


class Report:
    """What check() found. ok is False on any phantom, and in strict mode
    on any stale observation too."""

    def __init__(self, mode):
        self.mode = mode
        self.observations = 0
        self.stale = []      # dicts: who, op, path, seen, expected, staleness, change
        self.phantoms = []   # dicts: who, op, path, seen, start, end
        self.unmodelled = 0  # observations of a path the writer never described
        # change kind -> max over ops of that kind of (start of an
        # observation that still missed the op's effect - op's return).
        self.missed = {}

    @property
    def ok(self):
        if self.phantoms:
            return False
        return self.mode == "bounded" or not self.stale

    def staleness_by_change(self):
        out = {}
        for s in self.stale:
            out[s["change"]] = max(out.get(s["change"], 0.0), s["staleness"])
        return out

    def summary(self):
        values = sorted(s["staleness"] for s in self.stale)
        return {
            "mode": self.mode, "observations": self.observations,
            "stale": len(values), "phantoms": len(self.phantoms),
            "unmodelled": self.unmodelled,
            "max_s": values[-1] if values else 0.0,
            "phantom_max_age_s": max([p["age"] for p in self.phantoms],
                                     default=0.0),
            "p50_s": _percentile(values, 0.50),
            "p99_s": _percentile(values, 0.99),
            "max_by_change_s": self.staleness_by_change(),
            "missed_max_by_change_s": dict(self.missed),
        }

    def format(self, limit=10):
        s = self.summary()
        lines = ["checker %s: %d observations, %d stale, %d phantom "
                 "(max %.3f s, p50 %.3f s, p99 %.3f s)" % (
                     s["mode"], s["observations"], s["stale"], s["phantoms"],
                     s["max_s"], s["p50_s"], s["p99_s"])]
        for change, v in sorted(s["missed_max_by_change_s"].items()):
            lines.append("  %-8s effect still missed %.3f s after it "
                         "returned" % (change, v))
        for v in self.stale[:limit]:
            lines.append("  STALE %(who)s %(op)s %(path)s saw %(seen)r, "
                         "expected %(expected)r, %(staleness).3f s after "
                         "%(change)s returned" % v)
        for v in self.phantoms[:limit]:
            lines.append("  PHANTOM %(who)s %(op)s %(path)s saw %(seen)r "
                         "(never this path's state; seen on %(elsewhere)s)" % v)
        return "\n".join(lines)


def check(records, mode="strict"):
    """Checks every observation in records against the writer's history."""
    if mode not in ("strict", "bounded"):
        raise ValueError("mode must be strict or bounded, not %r" % mode)
    hist = _histories(records)
    ends = {k: [e for (_, e, _, _) in h] for k, h in hist.items()}
    starts = {k: [s for (s, _, _, _) in h] for k, h in hist.items()}
    rep = Report(mode)
    for o in records:
        if o["who"] == "w":
            continue
        rep.observations += 1
        key = (o["path"], o["op"])
        h = hist.get(key)
        if not h:
            rep.unmodelled += 1
            continue
        # lo: newest state whose op ended strictly before O.start.
        lo = max(0, bisect.bisect_left(ends[key], o["start"]) - 1)
        # hi: newest state whose op started at or before O.end.
        hi = max(lo, bisect.bisect_right(starts[key], o["end"]) - 1)
        seen = o["result"]
        if any(h[j][2] == seen for j in range(lo, hi + 1)):
            continue
        # Ops lo+1..hi overlap O; one syscall may publish its fields one at
        # a time (write(2) sets mtime before size), so during op j any
        # field-wise mix of its before and after states is legitimate.
        if any(_mix_of(h[j - 1][2], h[j][2], seen)
               for j in range(lo + 1, hi + 1)):
            continue
        older = [j for j in range(lo - 1, -1, -1) if h[j][2] == seen]
        if not older:
            # A value of another path: the reader resolved the name to an
            # inode that has moved (a stale dentry after rename/unlink).
            elsewhere = sorted(p for (p, k), hh in hist.items()
                               if k == o["op"] and p != o["path"] and
                               any(x[2] == seen for x in hh))
            # age: a lower bound of how long the dentry has been stale
            # (since this path's last change before O began).
            rep.phantoms.append({"who": o["who"], "op": o["op"],
                                 "path": o["path"], "seen": seen,
                                 "elsewhere": elsewhere,
                                 "age": o["start"] - h[lo][1],
                                 "start": o["start"], "end": o["end"]})
            continue
        superseded_by = h[older[0] + 1]
        for m in range(older[0] + 1, lo + 1):
            kind, lag = h[m][3], o["start"] - h[m][1]
            rep.missed[kind] = max(rep.missed.get(kind, 0.0), lag)
        rep.stale.append({
            "who": o["who"], "op": o["op"], "path": o["path"], "seen": seen,
            "expected": h[lo][2], "staleness": o["start"] - superseded_by[1],
            "change": superseded_by[3], "start": o["start"], "end": o["end"]})
    return rep

# ------------------------------------------------------------- the workload

DIRS = ("d0", "d1")
FILES = tuple("%s/f%d" % (d, i) for d in DIRS for i in range(3))
LINK = "d0/l0"
PATHS = FILES + (LINK,)
INITIAL_FILES = ("d0/f0", "d0/f1", "d1/f0")
MODES = (0o600, 0o640, 0o644, 0o664, 0o700, 0o755)
# The first ops cover every change kind once, then the workload is random.
OPENING = ("chmod", "touch", "append", "setxattr", "rename", "unlink",
           "create", "symlink")


def observations_of(path):
    """The observation kinds a reader makes on path each round."""
    return ("stat", "readlink") if path == LINK else ("stat", "getxattr")


class Workload:
    """Seeded random metadata ops over PATHS. Tracks which files exist so
    every op is valid; ops are dicts {op, path, [path2], [arg]}."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.existing = set(INITIAL_FILES)
        # Our idea of each file's mode, so a chmod always changes it (files
        # start 0644 under umask 022; a wrong guess only wastes one op).
        self.modes = {f: 0o644 for f in FILES}
        self.k = 0

    def next(self):
        self.k += 1
        rng, k = self.rng, self.k
        present = sorted(self.existing)
        absent = sorted(set(FILES) - self.existing)
        kind = OPENING[k - 1] if k <= len(OPENING) else rng.choice(OP_KINDS)
        # Keep between 2 and all of FILES present, so every kind stays valid.
        if kind == "rename" and not absent:
            kind = "unlink"
        if kind == "create" and not absent:
            kind = "unlink"
        if kind == "unlink" and len(present) < 3:
            kind = "create"
        if kind == "create":
            p = rng.choice(absent)
            self.existing.add(p)
            self.modes[p] = 0o644
            return {"op": "create", "path": p}
        if kind == "unlink":
            p = rng.choice(present)
            self.existing.discard(p)
            return {"op": "unlink", "path": p}
        if kind == "rename":
            p, q = rng.choice(present), rng.choice(absent)
            self.existing.discard(p)
            self.existing.add(q)
            self.modes[q] = self.modes[p]
            return {"op": "rename", "path": p, "path2": q}
        if kind == "symlink":
            return {"op": "symlink", "path": LINK, "arg": "target-%d" % k}
        p = rng.choice(present)
        if kind == "chmod":
            mode = rng.choice([m for m in MODES if m != self.modes[p]])
            self.modes[p] = mode
            return {"op": "chmod", "path": p, "arg": mode}
        if kind == "touch":
            # Distinct whole seconds: guests see mtime in seconds.
            return {"op": "touch", "path": p, "arg": 1600000000 + 1000 * k}
        if kind == "append":
            return {"op": "append", "path": p, "arg": "x" * rng.randint(1, 9)}
        return {"op": "setxattr", "path": p, "arg": "v%d" % k}


def touched(op):
    return [op["path"]] + ([op["path2"]] if "path2" in op else [])


def stat_value(st):
    """One encoding of an lstat result shared by host and guest readers:
    mode (hex, type included), size, mtime (s), inode."""
    return "%x %d %d %d" % (st.st_mode, st.st_size, int(st.st_mtime),
                            st.st_ino)


def observe_local(root, path, kind):
    """Observes root/path with one syscall; the value as stat_value etc."""
    full = os.path.join(root, path)
    try:
        if kind == "stat":
            return stat_value(os.lstat(full))
        if kind == "readlink":
            return os.readlink(full)
        return os.getxattr(full, XATTR, follow_symlinks=False).decode()
    except FileNotFoundError:
        return ENOENT
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def truth(backing, paths):
    """The true state of paths, read on the backing directory."""
    return {p: {k: observe_local(backing, p, k) for k in observations_of(p)}
            for p in paths}


def apply_local(root, op):
    """Performs op through the mount at root (one or two syscalls)."""
    p = os.path.join(root, op["path"])
    kind = op["op"]
    if kind == "chmod":
        os.chmod(p, op["arg"])
    elif kind == "touch":
        os.utime(p, (op["arg"], op["arg"]))
    elif kind == "append":
        with open(p, "a") as f:
            f.write(op["arg"])
    elif kind == "rename":
        os.rename(p, os.path.join(root, op["path2"]))
    elif kind == "create":
        os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif kind == "unlink":
        os.unlink(p)
    elif kind == "symlink":
        # Atomic retarget (a new link renamed over the old one): observers
        # never see an intermediate ENOENT the model does not have.
        tmp = os.path.join(root, "d0/.l0.tmp")
        os.symlink(op["arg"], tmp)
        os.rename(tmp, p)
    elif kind == "setxattr":
        os.setxattr(p, XATTR, op["arg"].encode())
    else:
        raise ValueError(kind)


def shell_of(op, root="/mnt"):
    """op as a busybox shell command for a guest (same effect as
    apply_local)."""
    p = "%s/%s" % (root, op["path"])
    kind = op["op"]
    if kind == "chmod":
        return "chmod %o %s" % (op["arg"], p)
    if kind == "touch":
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(op["arg"]))
        return "TZ=UTC touch -d '%s' %s" % (t, p)
    if kind == "append":
        return "printf %s >> %s" % (op["arg"], p)
    if kind == "rename":
        return "mv %s %s/%s" % (p, root, op["path2"])
    if kind == "create":
        return "touch %s" % p
    if kind == "unlink":
        return "rm %s" % p
    if kind == "symlink":
        return "ln -s %s %s/d0/.l0.tmp && mv -f %s/d0/.l0.tmp %s" % (
            op["arg"], root, root, p)
    if kind == "setxattr":
        return "xattr_tool set %s %s %s" % (p, XATTR, op["arg"])
    raise ValueError(kind)


class Recorder:
    """Thread-safe record list plus per-reader round counters (the writer
    waits until every reader finished a round that began after its op
    returned: each change is then both cached before and observed after)."""

    def __init__(self, readers):
        self.records = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.round_starts = {r: [] for r in readers}  # finished rounds' starts
        self.stop = False

    def add(self, recs):
        with self.lock:
            self.records.extend(recs)

    def round_done(self, who, round_start):
        with self.cond:
            self.round_starts[who].append(round_start)
            self.cond.notify_all()

    def wait_observed(self, after, timeout):
        """Until every reader finished a round started after `after`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(s and s[-1] > after
                          for s in self.round_starts.values()):
                left = deadline - time.monotonic()
                if left <= 0 or self.stop:
                    raise TimeoutError("readers made no round in %.0f s" %
                                       timeout)
                self.cond.wait(left)


def run_writer(rec, seed, ops, backing, do_op, gap_s=0.0, round_timeout=60,
               before_op=None):
    """The writer loop shared by both drivers: op, true state, wait for a
    reader round. do_op(op) performs op (raising on failure); before_op(k),
    if given, is called before op k (1-based)."""
    wl = Workload(seed)
    rec.add([{"who": "w", "op": "initial", "path": None, "start": NEG_INF,
              "end": NEG_INF, "result": 0, "after": truth(backing, PATHS)}])
    rec.wait_observed(time.monotonic(), round_timeout)
    for k in range(1, ops + 1):
        if before_op is not None:
            before_op(k)
        op = wl.next()
        start = time.monotonic()
        do_op(op)
        end = time.monotonic()
        rec.add([{"who": "w", "op": op["op"], "path": op["path"],
                  "start": start, "end": end, "result": 0,
                  "after": truth(backing, touched(op))}])
        rec.wait_observed(end, round_timeout)
        if gap_s:
            time.sleep(gap_s)


def _setup_local(root):
    for d in DIRS:
        os.mkdir(os.path.join(root, d))
    for f in INITIAL_FILES:
        with open(os.path.join(root, f), "w") as fh:
            fh.write("init")
        os.setxattr(os.path.join(root, f), XATTR, b"v0")
    os.symlink("target-0", os.path.join(root, LINK))

# ------------------------------------------------------------ host driver


class HostDriver:
    """Two coherefs-agent --host-mount processes on one backing directory:
    the writer works through mount A, readers observe through mount B, each
    observation one syscall timed with time.monotonic() around it.

    With coordinator_bin, a coherefs-coordinator (coordinator.py) runs on
    127.0.0.1 in the work dir and each agent gets --coordinator, its own
    --agent-id (host-a, host-b: two agents are two hosts) and
    --coherence=COHERENCE (strict|bounded|off; None passes no flag).
    `restarts=[(k, hard, down_s), ...]` restarts the coordinator (same port
    and data dir; SIGKILL if hard, else SIGTERM; down for down_s) from a
    side thread when the writer is about to start op k, while the workload
    goes on; `restart_info` then lists what happened."""

    def __init__(self, agent_bin, cache, extra_args=(), readers=1,
                 coordinator_bin=None, coherence=None, restarts=(),
                 keep=False, coordinator_args=()):
        self.agent_bin = agent_bin
        self.coordinator_args = list(coordinator_args)
        self.cache = cache
        self.extra_args = list(extra_args)
        self.readers = readers
        self.coordinator_bin = coordinator_bin
        self.coherence = coherence
        self.restarts = sorted(restarts)
        self.restart_info = []
        self.round_pause_s = 0.001
        self.keep = keep
        self.coordinator = None
        self.work = None
        self.procs = []
        self.mounts = []

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _agent_argv(self, name, mnt):
        argv = [self.agent_bin, "--shared-dir=" + self.backing,
                "--host-mount=" + mnt, "--cache=" + self.cache,
                "--thread-pool-size=2"]
        if self.coordinator is not None:
            argv += ["--coordinator=" + self.coordinator.target,
                     "--agent-id=host-" + name, "--insecure"]
        if self.coherence is not None:
            argv.append("--coherence=" + self.coherence)
        return argv + self.extra_args

    def _start(self):
        self.work = tempfile.mkdtemp(prefix="cohchk.", dir="/tmp")
        self.backing = os.path.join(self.work, "shared")
        os.mkdir(self.backing)
        _setup_local(self.backing)
        if self.coordinator_bin:
            self.coordinator = coordinator.Coordinator(
                self.coordinator_bin, self.work,
                extra_args=self.coordinator_args)
            self.coordinator.start()
        for name in ("a", "b"):
            mnt = os.path.join(self.work, "mnt_" + name)
            os.mkdir(mnt)
            log = open(os.path.join(self.work, "agent_%s.log" % name), "w")
            self.procs.append(subprocess.Popen(
                self._agent_argv(name, mnt), stdout=log,
                stderr=subprocess.STDOUT))
            log.close()
            self.mounts.append(mnt)
        deadline = time.monotonic() + 20
        while not all(os.path.ismount(m) for m in self.mounts):
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("agent exited %d: %s" % (
                        p.returncode, self.agent_log_tail()))
            if time.monotonic() > deadline:
                raise RuntimeError("agents did not mount in 20 s")
            time.sleep(0.05)

    def agent_log_tail(self, n=15):
        """The last n lines of each agent's and the coordinator's log."""
        out = []
        for name in ("agent_a", "agent_b", "coordinator"):
            try:
                with open(os.path.join(self.work, name + ".log")) as f:
                    lines = f.read().splitlines()[-n:]
            except OSError:
                lines = []
            out.append("%s:\n  " % name + "\n  ".join(lines))
        return "\n".join(out)

    def __exit__(self, *exc):
        for p in self.procs:
            coordinator.stop_process(p)
        for m in self.mounts:
            if os.path.ismount(m):
                subprocess.call(["umount", "-l", m])
        if self.coordinator is not None:
            self.coordinator.stop()
            self.coordinator = None
        self.procs, self.mounts = [], []
        if self.work and self.keep:
            print("checker: kept %s (agent and coordinator logs)" % self.work,
                  file=sys.stderr)
        elif self.work:
            shutil.rmtree(self.work, ignore_errors=True)
        self.work = None
        return False

    def _restarter(self, reached, rec):
        """Side thread: each restart once the writer reached its op."""
        def body():
            for k, hard, down_s in self.restarts:
                with reached:
                    reached.wait_for(lambda: rec.stop or
                                     self._writer_op >= k)
                if rec.stop:
                    return
                t0 = time.monotonic()
                try:
                    self.coordinator.restart(hard=hard, down_s=down_s)
                    err = None
                except Exception as e:  # reported through restart_info
                    err = repr(e)
                self.restart_info.append({
                    "before_op": k, "hard": hard, "down_s": down_s,
                    "start": t0, "end": time.monotonic(), "error": err})
        return threading.Thread(target=body, daemon=True)

    def run(self, seed, ops):
        names = ["r%d" % (i + 1) for i in range(self.readers)]
        rec = Recorder(names)
        mount_a, mount_b = self.mounts

        def reader(who):
            while not rec.stop:
                round_start = time.monotonic()
                out = []
                for path in PATHS:
                    for kind in observations_of(path):
                        s = time.monotonic()
                        v = observe_local(mount_b, path, kind)
                        e = time.monotonic()
                        out.append({"who": who, "op": kind, "path": path,
                                    "start": s, "end": e, "result": v})
                rec.add(out)
                rec.round_done(who, round_start)
                # Keeps the record count bounded when writer ops are slow
                # (strict waits), at 1 ms of observation granularity.
                time.sleep(self.round_pause_s)

        threads = [threading.Thread(target=reader, args=(n,), daemon=True)
                   for n in names]
        before_op = None
        restarter = None
        self._writer_op = 0
        reached = threading.Condition()
        if self.restarts:
            restarter = self._restarter(reached, rec)
            restarter.start()

            def before_op(k):
                with reached:
                    self._writer_op = k
                    reached.notify_all()
        for t in threads:
            t.start()
        try:
            run_writer(rec, seed, ops, self.backing,
                       lambda op: apply_local(mount_a, op),
                       before_op=before_op)
        finally:
            rec.stop = True
            if restarter is not None:
                with reached:
                    reached.notify_all()
                restarter.join(60)
            for t in threads:
                t.join(30)
        return rec.records

# -------------------------------------------------------------- VM driver


def _vm_batch_script(root="/mnt"):
    """One reader round as a guest shell script: one line per observation,
    "I VALUE", in the order of _vm_batch_items()."""
    lines = []
    for i, (path, kind) in enumerate(_vm_batch_items()):
        p = "%s/%s" % (root, path)
        if kind == "stat":
            cmd = ("stat -c '%%f %%s %%Y %%i' %s 2>/dev/null || echo %s" %
                   (p, ENOENT))
        elif kind == "readlink":
            cmd = "readlink %s || echo %s" % (p, ENOENT)
        else:
            cmd = "xattr_tool get %s %s; echo" % (p, XATTR)
        lines.append("printf '%d '; %s" % (i, cmd))
    return "\n".join(lines)


def _vm_batch_items():
    return [(p, k) for p in PATHS for k in observations_of(p)]


def _parse_guest_value(kind, raw):
    raw = raw.strip()
    if kind == "getxattr" and raw.startswith("xattr: get: "):
        return raw[len("xattr: get: "):]
    if kind == "stat" and raw != ENOENT:
        mode, size, mtime, ino = raw.split()
        return "%x %d %d %d" % (int(mode, 16), int(size), int(mtime),
                                int(ino))
    return raw


class VmDriver:
    """One writer guest and `readers` reader guests on a vmlib.Cluster.

    Each reader round is ONE guest.run() of a busybox script that observes
    every path by lstat/readlink/getxattr on the path itself (never a
    directory listing, never drop_caches: both would refresh the cache and
    hide staleness). Every observation in the round gets the host's
    time.monotonic() interval around the whole guest.run() round trip: this
    widens intervals (by the serial channel, the guest's scheduling and the
    other observations of the round), which can only turn a stale read
    into an accepted "concurrent" one, never flag a fresh read -- the check
    stays sound (no false alarms) and staleness figures are lower bounds
    minus at most one round trip. Guest clocks are not used: they are not
    comparable with the host's."""

    def __init__(self, backend, readers=1, vmlib=None, keep=False,
                 coordinator_bin=None, coherence=None, worker_kills=()):
        """worker_kills=[(k, i), ...]: before writer op k, SIGKILL the
        worker process of agent i (a supervised coherefs-agent: the worker
        is the started process's one child; its supervisor restarts it);
        `kill_info` then lists what happened."""
        self.backend = backend
        self.readers = readers
        self.vmlib = vmlib
        self.keep = keep
        self.coordinator_bin = coordinator_bin
        self.coherence = coherence
        self.worker_kills = dict(worker_kills)
        self.kill_info = []

    def _kill_worker(self, k):
        i = self.worker_kills[k]
        sup = self.backend.procs[i].pid
        try:
            with open("/proc/%d/task/%d/children" % (sup, sup)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        info = {"before_op": k, "agent": i, "at": time.monotonic(),
                "worker": kids[0] if kids else None}
        if kids:
            os.kill(kids[0], signal.SIGKILL)
        self.kill_info.append(info)

    def run(self, seed, ops):
        """With coordinator_bin (coherefs backend only), a coordinator runs
        for the cluster's lifetime and every agent the backend starts gets
        --coordinator, its own --agent-id (vm-agent-I) and --coherence."""
        if not self.coordinator_bin:
            return self._run(seed, ops)
        work = tempfile.mkdtemp(prefix="cohcrd.", dir="/tmp")
        try:
            with coordinator.Coordinator(self.coordinator_bin, work) as crd:
                coherence = self.coherence

                def agent_args(i):
                    args = ["--coordinator=" + crd.target,
                            "--agent-id=vm-agent-%d" % i]
                    if coherence is not None:
                        args.append("--coherence=" + coherence)
                    return args
                self.backend.per_agent_args = agent_args
                return self._run(seed, ops)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, seed, ops):
        vm = self.vmlib
        helper = os.path.join(os.path.dirname(vm.__file__), "xattr_tool.c")
        with vm.Cluster(self.backend, 1 + self.readers, helpers=[helper],
                        keep=self.keep) as c:
            writer = c.guests[0]
            writer.check("cd /mnt && mkdir d0 d1 && for f in %s; do "
                         "printf init > $f && xattr_tool set $f %s v0; done "
                         "&& ln -s target-0 %s" % (" ".join(INITIAL_FILES),
                                                    XATTR, LINK))
            names = ["r%d" % (i + 1) for i in range(self.readers)]
            rec = Recorder(names)
            script = _vm_batch_script()
            items = _vm_batch_items()
            errors = []

            def reader(who, guest):
                try:
                    while not rec.stop:
                        s = time.monotonic()
                        rc, out = guest.run(script, timeout=60)
                        e = time.monotonic()
                        got = {}
                        for line in out.splitlines():
                            idx, _, val = line.partition(" ")
                            if idx.isdigit():
                                got[int(idx)] = val
                        recs = []
                        for i, (path, kind) in enumerate(items):
                            if i not in got:
                                raise RuntimeError("%s: no line %d in %r" %
                                                   (who, i, out))
                            recs.append({"who": who, "op": kind, "path": path,
                                         "start": s, "end": e,
                                         "result": _parse_guest_value(
                                             kind, got[i])})
                        rec.add(recs)
                        rec.round_done(who, s)
                except Exception as ex:  # reported by the writer's timeout
                    errors.append(ex)
                    rec.stop = True

            threads = [threading.Thread(target=reader, args=(n, g),
                                        daemon=True)
                       for n, g in zip(names, c.guests[1:])]
            for t in threads:
                t.start()
            before_op = None
            if self.worker_kills:
                def before_op(k):
                    if k in self.worker_kills:
                        self._kill_worker(k)
            try:
                run_writer(rec, seed, ops, c.shared_dir,
                           lambda op: writer.check(shell_of(op)),
                           round_timeout=90, before_op=before_op)
            except TimeoutError:
                if errors:
                    raise errors[0]
                raise
            finally:
                rec.stop = True
                for t in threads:
                    t.join(90)
            if errors:
                raise errors[0]
            return rec.records

# --------------------------------------------------------------------- CLI


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("host", help="two coherefs agents, host mounts")
    h.add_argument("--agent-bin", required=True)
    h.add_argument("--cache", default="always")
    h.add_argument("--ops", type=int, default=2000)
    h.add_argument("--readers", type=int, default=1)
    v = sub.add_parser("vm", help="guests on a vmlib.Cluster")
    v.add_argument("--ops", type=int, default=30)
    v.add_argument("--readers", type=int, default=1)
    v.add_argument("--keep", action="store_true")
    c = sub.add_parser("check", help="check a JSON records file")
    c.add_argument("records")
    for p in (h, v, c):
        p.add_argument("--mode", default="bounded",
                       choices=("strict", "bounded"))
    h.add_argument("--agent-arg", action="append", default=[],
                   help="extra coherefs-agent argument (repeatable)")
    h.add_argument("--restart-at", type=int,
                   help="restart the coordinator before writer op K")
    h.add_argument("--restart-hard", action="store_true",
                   help="SIGKILL the coordinator (default SIGTERM)")
    h.add_argument("--restart-down-s", type=float, default=1.0,
                   help="how long the coordinator stays down")
    h.add_argument("--keep", action="store_true",
                   help="keep the work dir (logs)")
    for p in (h, v):
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--save", help="write the records here (JSON)")
        p.add_argument("--coordinator-bin",
                       help="run coherefs-coordinator; agents follow it")
        p.add_argument("--coherence", choices=("strict", "bounded", "off"),
                       help="the agents' --coherence (default: no flag)")
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(here), "vm"))
    import vmlib  # noqa: E402  (only the vm subcommand needs the harness)
    vmlib.add_backend_args(v)
    args = ap.parse_args(argv)
    vmlib.install_signal_handlers()  # SIGTERM: clean up (with blocks)
    if args.cmd == "check":
        with open(args.records) as f:
            records = json.load(f)
    elif args.cmd == "host":
        restarts = ([(args.restart_at, args.restart_hard,
                      args.restart_down_s)]
                    if args.restart_at else [])
        with HostDriver(args.agent_bin, args.cache, args.agent_arg,
                        readers=args.readers,
                        coordinator_bin=args.coordinator_bin,
                        coherence=args.coherence, restarts=restarts,
                        keep=args.keep) as d:
            records = d.run(args.seed, args.ops)
            if d.restart_info:
                print("coordinator restart: %s" % json.dumps(d.restart_info))
    else:
        records = VmDriver(vmlib.backend_from_args(args), args.readers,
                           vmlib, args.keep, args.coordinator_bin,
                           args.coherence).run(args.seed, args.ops)
    if getattr(args, "save", None):
        with open(args.save, "w") as f:
            json.dump(records, f)
    rep = check(records, args.mode)
    print(rep.format())
    print(json.dumps(rep.summary(), sort_keys=True))
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
