#!/usr/bin/env python3
"""The checker's negative and positive controls (proof it can fail, and
that it does not cry wolf).

  checker_controls_test.py host --agent-bin=PATH
      two coherefs agents (--host-mount) on one directory:
      --cache=always must show stale reads (coherence is not wired in yet:
      when it is, this control must move to a flag that disables it),
      --cache=none must show none.
  checker_controls_test.py vm
      QEMU's virtiofsd, one per guest, one writer and one reader guest:
      cache=always must show stale reads after chmod, touch (mtime), rename
      and unlink (the baseline of /work/shared/notes/qemu-e2e.md),
      cache=none must show none.
Prints the staleness reports, then "N passed, N failed"; exits 1 on any
failure. Never skips: a VM that cannot boot is a failure.
"""

import argparse
import os
import sys

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


def run_host(args, res):
    for cache, must in (("always", HOST_MUST_CATCH), ("none", None)):
        with checker.HostDriver(args.agent_bin, cache) as d:
            records = d.run(args.seed, args.ops)
        control(res, "coherefs host mounts cache=%s (%d writer ops)" % (
            cache, args.ops), records, must)


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


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("host")
    h.add_argument("--agent-bin", required=True)
    h.add_argument("--ops", type=int, default=1500)
    v = sub.add_parser("vm")
    v.add_argument("--ops", type=int, default=24)
    for p in (h, v):
        p.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    res = Results()
    (run_host if args.cmd == "host" else run_vm)(args, res)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed or not res.passed else 0


if __name__ == "__main__":
    sys.exit(main())
