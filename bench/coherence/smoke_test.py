"""Smoke test of the coherence benchmark command (coherence_bench.py).

Runs the whole command with a tiny tree on two modes, coherefs-strict (one
coordinator, two agents; --lease-max-ms=1000 to keep it short) and
virtiofsd-none, every phase, and checks what it wrote: exact op counts
per pass, both guests' write-shared figures, the ratio rows, and the
staleness check (strict and none: no stale read).
Needs root and QEMU: ~1.5 minutes under TCG.

  smoke_test.py --agent-bin=PATH --coordinator-bin=PATH
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.realpath(__file__))
ARGS = None
TREE = (4, 2, 5)
FILES = TREE[0] * TREE[1] * TREE[2]
# Listings include "." and "..": the root, each dNN, each dNN/sNN.
ENTRIES = (TREE[0] + 2) + TREE[0] * (TREE[1] + 2) + \
    TREE[0] * TREE[1] * (TREE[2] + 2)
MODES = ("coherefs-strict", "virtiofsd-none")
PASSES = 2


class SmokeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cohsmoke.",
                                   dir=os.environ.get("TEST_TMPDIR"))
        out = os.path.join(cls.tmp, "r.json")
        cls.proc = subprocess.run(
            ["/usr/bin/python3", os.path.join(HERE, "coherence_bench.py"),
             "--agent-bin=" + ARGS.agent_bin,
             "--coordinator-bin=" + ARGS.coordinator_bin,
             "--modes=" + ",".join(MODES), "--tree=%d,%d,%d" % TREE,
             "--reps=1", "--warm-passes=%d" % PASSES, "--warm-seconds=0",
             # A 1 s lease: a file's first strict change waits out the
             # whole lease, and the write phase must get past it in 3 s.
             "--write-seconds=3", "--agent-arg=--lease-max-ms=1000",
             "--staleness-ops=8", "--out-json=" + out,
             "--out-csv=" + os.path.join(cls.tmp, "r.csv")],
            capture_output=True, text=True, timeout=600)
        sys.stdout.write(cls.proc.stdout[-6000:])
        sys.stderr.write(cls.proc.stderr[-3000:])
        with open(out) as f:
            cls.doc = json.load(f)

    def test_command_succeeds(self):
        self.assertEqual(self.proc.returncode, 0)
        self.assertEqual(self.doc["failures"], [])

    def test_every_pass_counts_exactly(self):
        for mode in MODES:
            got = [(s["workload"], s["ops"]) for s in self.doc["samples"]
                   if s["mode"] == mode]
            self.assertEqual(got, [("tree_stat_cold", FILES)] +
                             [("tree_stat_warm", FILES)] * PASSES +
                             [("tree_readdir_cold", ENTRIES)] +
                             [("tree_readdir_warm", ENTRIES)] * PASSES, mode)
        # The coherefs reader's agent was scraped: its cold pass looked up
        # every file at least once.
        cold = [m for m in self.doc["fuse_metrics"]
                if m["mode"] == "coherefs-strict" and
                m["workload"] == "tree_stat_cold"]
        self.assertEqual(len(cold), 1)
        lookups = cold[0]["fuse_ops"].get("lookup", [0])[0]
        self.assertGreaterEqual(lookups, FILES)

    def test_both_guests_wrote(self):
        for mode in MODES:
            guests = self.doc["write"][mode]["guests"]
            self.assertEqual(len(guests), 2)
            for g in guests:
                kinds = [g[k]["ops"] for k in ("shared_chmod", "shared_touch",
                                               "shared_append")]
                self.assertGreater(min(kinds), 0)
                self.assertEqual(sum(kinds), g["shared_write"]["ops"])

    def test_ratios_against_none(self):
        rows = [(r["workload"], r["subject"], r["baseline"])
                for r in self.doc["ratios"]]
        self.assertEqual(rows, [
            ("tree_stat_warm", "coherefs-strict", "virtiofsd-none"),
            ("tree_readdir_warm", "coherefs-strict", "virtiofsd-none"),
            ("read_mostly_warm", "coherefs-strict", "virtiofsd-none")])

    def test_no_stale_read_in_strict_or_none(self):
        for mode in MODES:
            s = self.doc["staleness"][mode]
            self.assertNotIn("error", s)
            self.assertEqual((s["stale"], s["phantoms"]), (0, 0), mode)
            self.assertGreater(s["observations"], 0)
        self.assertIs(self.doc["staleness"]["coherefs-strict"]["strict_ok"],
                      True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--coordinator-bin", required=True)
    ARGS, rest = ap.parse_known_args()
    ARGS.agent_bin = os.path.abspath(ARGS.agent_bin)
    ARGS.coordinator_bin = os.path.abspath(ARGS.coordinator_bin)
    unittest.main(argv=[sys.argv[0]] + rest)
