#!/usr/bin/env python3
"""The checker's negative and positive controls (proof it can fail, and
that it does not cry wolf).

  checker_controls_test.py host --agent-bin=PATH --coordinator-bin=PATH
      two coherefs agents (--host-mount, distinct --agent-id: two hosts) on
      one directory and one coordinator, --cache=always:
        --coherence=strict: no stale read, no phantom;
        --coherence=strict with the coordinator restarted twice (SIGTERM,
          then SIGKILL; same port and data dir) mid-workload: the same;
        --coherence=bounded --lease-max-ms=1000: staleness (and stale
          dentries' age) at most the lease + margin + slack;
        --coherence=off: MUST show stale reads (the negative control);
      and without a coordinator, --cache=none must show none.
  checker_controls_test.py vm
      QEMU's virtiofsd, one per guest, one writer and one reader guest:
      cache=always must show stale reads after chmod, touch (mtime), rename
      and unlink (the baseline of /work/shared/notes/qemu-e2e.md),
      cache=none must show none.
  checker_controls_test.py vm-coherefs --agent-bin=PATH --coordinator-bin=PATH
      the same workload (seed, ops, guests) on coherefs: one agent per
      guest (two agents = two hosts), one coordinator, cache=always,
      --coherence=strict: no stale read, no phantom. With
      --kill-workers-at=K:I,...: before writer op K the worker process of
      agent I (0: the writer's, 1: the reader's) is SIGKILLed and its
      supervisor restarts it mid-workload: still no stale read, every
      change succeeds, the reader's rounds go on.
Prints the staleness reports, then "N passed, N failed"; exits 1 on any
failure. Never skips: a VM that cannot boot is a failure.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
import checker  # noqa: E402

# Change kinds the negative controls must catch (the notes' baseline).
VM_MUST_CATCH = {"chmod", "touch", "rename", "unlink"}
HOST_MUST_CATCH = {"chmod", "touch", "append", "rename", "unlink"}


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def expect(self, what, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   " + what)
        else:
            self.failed += 1
            print("FAIL " + what + (": " + detail if detail else ""))


def control(res, label, records, must_catch):
    """must_catch None: the positive control (no stale, no phantom)."""
    rep = checker.check(records, "strict")
    print("--- %s" % label)
    print(rep.format(limit=5))
    s = rep.summary()
    res.expect("%s: made observations (%d)" % (label, s["observations"]),
               s["observations"] > 0 and s["unmodelled"] == 0)
    if must_catch is None:
        res.expect("%s: strict check passes (no stale, no phantom)" % label,
                   rep.ok, "%d stale, %d phantom" % (s["stale"],
                                                     s["phantoms"]))
        return
    caught = set(s["missed_max_by_change_s"])
    res.expect("%s: strict check fails (stale reads found)" % label,
               not rep.ok and s["stale"] > 0)
    res.expect("%s: stale after each of %s" % (label, sorted(must_catch)),
               must_catch <= caught, "caught only %s" % sorted(caught))


# Bounded mode: the lease the agents may grant, the strict margin, and
# slack for the reader thread's scheduling and the bump's way to the other
# agent (loopback gRPC). Staleness above this is a failure.
BOUNDED_LEASE_MAX_S = 1.0
BOUNDED_MARGIN_S = 0.1
BOUNDED_SLACK_S = 0.5


def writer_waits(records):
    ops = [r for r in records if r["who"] == "w" and r["op"] != "initial"]
    return max((r["end"] - r["start"] for r in ops), default=0.0), len(ops)


def run_host(args, res):
    """Each case runs even if an earlier one failed (an exception such as
    EIO from a writer op is a reported failure)."""
    cases = {"strict": host_strict, "restarts": host_strict_restarts,
             "bounded": host_bounded, "off": host_off,
             "uncached": host_uncached}
    for name in args.cases.split(","):
        case = cases[name]
        try:
            case(args, res)
        except Exception as e:  # reported, then the next case
            res.expect("%s ran" % case.__name__, False, repr(e))


def host_strict(args, res):
    common = dict(coordinator_bin=args.coordinator_bin, readers=2)
    # Strict mode makes every change wait out the readers' leases, so the
    # default run uses short ones (--strict-lease-max-ms; the readers still
    # re-read every ~1 ms, well inside a lease): thousands of ops in
    # seconds. A longer lease is a flag away (README.md).
    strict_args = ["--lease-max-ms=%d" % args.strict_lease_max_ms,
                   "--lease-margin-ms=%d" % args.strict_lease_margin_ms]
    with checker.HostDriver(args.agent_bin, "always", strict_args,
                            coherence="strict", **common) as d:
        records = d.run(args.seed, args.strict_ops)
    control(res, "coherefs strict, 2 agents + coordinator, lease max %d ms, "
            "margin %d ms (%d writer ops)" % (
                args.strict_lease_max_ms, args.strict_lease_margin_ms,
                args.strict_ops), records, None)
    longest, n = writer_waits(records)
    print("     writer ops %d, longest %.3f s" % (n, longest))
    res.expect("strict: every writer op ran", n == args.strict_ops)
    if args.save:
        with open(args.save + ".strict.json", "w") as f:
            json.dump(records, f)



def host_strict_restarts(args, res):
    """Strict across coordinator restarts (SIGTERM, then SIGKILL)."""
    common = dict(coordinator_bin=args.coordinator_bin, readers=2)
    strict_args = ["--lease-max-ms=%d" % args.strict_lease_max_ms,
                   "--lease-margin-ms=%d" % args.strict_lease_margin_ms]
    ops = args.restart_ops
    third = max(1, ops // 3)
    restarts = [(third, False, 0.5), (2 * third, True, 1.0)]
    # After a restart strict bumps wait out the coordinator's grace, which
    # must cover the agents' longest guest lease (lease + margin + the 1 s
    # the agent adds for its own lease thread): short here, like the leases.
    grace_ms = args.strict_lease_max_ms + args.strict_lease_margin_ms + 1500
    with checker.HostDriver(args.agent_bin, "always", strict_args,
                            coherence="strict", restarts=restarts,
                            coordinator_args=["--strict-grace=%dms" % grace_ms],
                            keep=bool(os.environ.get("COHEREFS_KEEP")),
                            **common) as d:
        try:
            records = d.run(args.seed + 1, ops)
        except OSError as e:
            # A strict change that could not be announced within the
            # agent's change timeout returns EIO: report when it happened.
            res.expect("restarts: every writer op succeeds", False,
                       "%r at %.3f s (monotonic); restarts: %s" % (
                           e, time.monotonic(), json.dumps(d.restart_info)))
            print(d.agent_log_tail(40))
            return
        info = list(d.restart_info)
    if args.save:
        with open(args.save + ".restart.json", "w") as f:
            json.dump(records, f)
    control(res, "coherefs strict across 2 coordinator restarts (%d writer "
            "ops)" % ops, records, None)
    for r in info:
        print("     restart before op %d (%s, down %.1f s): took %.3f s, "
              "error %s" % (r["before_op"], "SIGKILL" if r["hard"] else
                            "SIGTERM", r["down_s"], r["end"] - r["start"],
                            r["error"]))
    res.expect("restarts: both done without error",
               len(info) == 2 and all(r["error"] is None for r in info),
               repr(info))
    longest, n = writer_waits(records)
    print("     writer ops %d, longest %.3f s (waits while fenced)" % (
        n, longest))
    res.expect("restarts: every writer op ran (agents reconnected)",
               n == ops)
    ops_after = [r for r in records if r["who"] == "w" and info and
                 r["start"] > info[-1]["end"]]
    res.expect("restarts: writer ops after the last restart (%d)" %
               len(ops_after), len(ops_after) > 0)



def host_bounded(args, res):
    common = dict(coordinator_bin=args.coordinator_bin, readers=2)
    bound = BOUNDED_LEASE_MAX_S + BOUNDED_MARGIN_S + BOUNDED_SLACK_S
    with checker.HostDriver(
            args.agent_bin, "always", coherence="bounded",
            extra_args=["--lease-max-ms=%d" % (BOUNDED_LEASE_MAX_S * 1000)],
            **common) as d:
        records = d.run(args.seed + 2, args.ops)
    rep = checker.check(records, "bounded")
    label = "coherefs bounded, lease max %.1f s (%d writer ops)" % (
        BOUNDED_LEASE_MAX_S, args.ops)
    print("--- %s" % label)
    print(rep.format(limit=3))
    s = rep.summary()
    res.expect("%s: made observations (%d)" % (label, s["observations"]),
               s["observations"] > 0 and s["unmodelled"] == 0)
    worst_missed = max(s["missed_max_by_change_s"].values(), default=0.0)
    res.expect("bounded: max staleness %.3f s <= %.1f s" % (s["max_s"], bound),
               s["max_s"] <= bound)
    res.expect("bounded: max missed %.3f s <= %.1f s" % (worst_missed, bound),
               worst_missed <= bound)
    res.expect("bounded: stale dentries' age %.3f s <= %.1f s" % (
        s["phantom_max_age_s"], bound), s["phantom_max_age_s"] <= bound)



def host_off(args, res):
    """The negative control: same agents and coordinator, no coherence."""
    common = dict(coordinator_bin=args.coordinator_bin, readers=2)
    with checker.HostDriver(args.agent_bin, "always", coherence="off",
                            **common) as d:
        records = d.run(args.seed, args.ops)
    control(res, "coherefs --coherence=off cache=always (%d writer ops)" %
            args.ops, records, HOST_MUST_CATCH)



def host_uncached(args, res):
    """The checker's positive control: no caching, no coordinator."""
    with checker.HostDriver(args.agent_bin, "none") as d:
        records = d.run(args.seed, args.ops)
    control(res, "coherefs host mounts cache=none (%d writer ops)" %
            args.ops, records, None)


def run_vm(args, res):
    import vmlib
    vmlib.install_signal_handlers()
    for cache, must in (("always", VM_MUST_CATCH), ("none", None)):
        backend = vmlib.VirtiofsdBackend(cache=cache)
        try:
            records = checker.VmDriver(backend, 1, vmlib).run(args.seed,
                                                              args.ops)
        except Exception as e:  # a VM failure is a test failure, reported
            res.expect("virtiofsd cache=%s: VM workload ran" % cache, False,
                       repr(e))
            continue
        control(res, "virtiofsd cache=%s (%d writer ops)" % (cache, args.ops),
                records, must)


def run_vm_coherefs(args, res):
    import vmlib
    vmlib.install_signal_handlers()
    backend = vmlib.CoherefsBackend(os.path.abspath(args.agent_bin),
                                    sockets="per-guest", cache="always",
                                    extra_args=args.agent_arg)
    kills = [tuple(int(x) for x in kv.split(":"))
             for kv in args.kill_workers_at.split(",") if kv]
    label = "coherefs strict, agent per guest + coordinator (%d writer ops%s)" % (
        args.ops, ", %d worker kills" % len(kills) if kills else "")
    driver = checker.VmDriver(
        backend, 1, vmlib, coordinator_bin=args.coordinator_bin,
        coherence="strict", worker_kills=kills)
    try:
        records = driver.run(args.seed, args.ops)
    except Exception as e:  # a VM failure is a test failure, reported
        res.expect("%s: VM workload ran" % label, False, repr(e))
        return
    control(res, label, records, None)
    if kills:
        killed = [k for k in driver.kill_info if k["worker"] is not None]
        res.expect("%s: every worker kill landed mid-workload" % label,
                   len(killed) == len(kills),
                   json.dumps(driver.kill_info))
        reads_after = [r for r in records if r["who"] != "w" and
                       killed and r["start"] > killed[-1]["at"]]
        res.expect("%s: the reader kept observing after the last kill" % label,
                   len(reads_after) > 0, "%d observations" % len(reads_after))
    longest, n = writer_waits(records)
    print("     writer ops %d, longest %.3f s" % (n, longest))
    if args.save:
        with open(args.save, "w") as f:
            json.dump(records, f)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("host")
    h.add_argument("--agent-bin", required=True)
    h.add_argument("--coordinator-bin", required=True)
    h.add_argument("--ops", type=int, default=1000)
    h.add_argument("--strict-ops", type=int, default=1000)
    h.add_argument("--restart-ops", type=int, default=400)
    # The margin must cover the kernel's rounding of entry/attr timeouts
    # up to jiffies (2 jiffies: 8 ms at HZ=250) plus reply delivery.
    h.add_argument("--strict-lease-max-ms", type=int, default=10)
    h.add_argument("--strict-lease-margin-ms", type=int, default=15)
    h.add_argument("--save", help="write each run's records to SAVE.*.json")
    h.add_argument("--cases", default="strict,restarts,bounded,off,uncached",
                   help="comma-separated subset, in order")
    v = sub.add_parser("vm")
    v.add_argument("--ops", type=int, default=24)
    vc = sub.add_parser("vm-coherefs")
    vc.add_argument("--agent-bin", required=True)
    vc.add_argument("--coordinator-bin", required=True)
    vc.add_argument("--agent-arg", action="append", default=[])
    vc.add_argument("--save", help="write the records here (JSON)")
    vc.add_argument("--ops", type=int, default=24)
    vc.add_argument("--kill-workers-at", default="",
                    help="K:I,... SIGKILL agent I's worker before writer op K")
    for p in (h, v, vc):
        p.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    import vmlib
    vmlib.install_signal_handlers()  # SIGTERM (a Bazel timeout): clean up
    res = Results()
    {"host": run_host, "vm": run_vm,
     "vm-coherefs": run_vm_coherefs}[args.cmd](args, res)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
