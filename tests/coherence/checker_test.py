#!/usr/bin/env python3
"""Unit tests of checker.check over hand-made histories (no mounts, no VMs).
Prints "N passed, N failed" and exits 1 on any failure."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import checker  # noqa: E402

INF = float("-inf")


def initial(**paths):
    return {"who": "w", "op": "initial", "path": None, "start": INF,
            "end": INF, "result": 0,
            "after": {p.replace("_", "/"): {"stat": v}
                      for p, v in paths.items()}}


def write(op, start, end, **after):
    return {"who": "w", "op": op, "path": None, "start": start, "end": end,
            "result": 0, "after": {p.replace("_", "/"): {"stat": v}
                                   for p, v in after.items()}}


def obs(path, start, end, value, who="r1", kind="stat"):
    return {"who": who, "op": kind, "path": path, "start": start, "end": end,
            "result": value}


class CheckTest(unittest.TestCase):

    def test_no_stale_history_passes(self):
        recs = [initial(d0_f0="644"),
                obs("d0/f0", 0.5, 0.6, "644"),
                write("chmod", 1.0, 1.1, d0_f0="600"),
                obs("d0/f0", 1.2, 1.3, "600"),
                write("chmod", 2.0, 2.1, d0_f0="640"),
                obs("d0/f0", 2.2, 2.3, "640")]
        for mode in ("strict", "bounded"):
            rep = checker.check(recs, mode)
            self.assertTrue(rep.ok)
            self.assertEqual(rep.observations, 3)
            self.assertEqual(rep.stale, [])
            self.assertEqual(rep.phantoms, [])

    def test_stale_read_flagged_with_exact_path_and_staleness(self):
        recs = [initial(d0_f0="644", d0_f1="644"),
                write("chmod", 1.0, 1.25, d0_f0="600"),
                obs("d0/f1", 1.5, 1.6, "644"),
                obs("d0/f0", 1.75, 1.8, "644")]
        rep = checker.check(recs, "strict")
        self.assertFalse(rep.ok)
        self.assertEqual(len(rep.stale), 1)
        v = rep.stale[0]
        self.assertEqual(v["path"], "d0/f0")
        self.assertEqual(v["seen"], "644")
        self.assertEqual(v["expected"], "600")
        self.assertEqual(v["change"], "chmod")
        self.assertEqual(v["staleness"], 0.5)
        bounded = checker.check(recs, "bounded")
        self.assertTrue(bounded.ok)
        s = bounded.summary()
        self.assertEqual(s["stale"], 1)
        self.assertEqual(s["max_s"], 0.5)
        self.assertEqual(s["max_by_change_s"], {"chmod": 0.5})

    def test_staleness_counts_from_first_superseding_change(self):
        # Saw state 0 after two changes: staleness is from the first one.
        recs = [initial(d0_f0="a"),
                write("chmod", 1.0, 1.5, d0_f0="b"),
                write("touch", 2.0, 2.5, d0_f0="c"),
                obs("d0/f0", 3.0, 3.1, "a")]
        rep = checker.check(recs, "bounded")
        self.assertEqual(rep.stale[0]["staleness"], 1.5)
        self.assertEqual(rep.stale[0]["change"], "chmod")
        self.assertEqual(rep.stale[0]["expected"], "c")
        # Both changes were missed: each is charged from its own return.
        self.assertEqual(rep.summary()["missed_max_by_change_s"],
                         {"chmod": 1.5, "touch": 0.5})
        # Saw state 1: stale since the touch returned.
        rep = checker.check(recs[:3] + [obs("d0/f0", 3.0, 3.1, "b")], "bounded")
        self.assertEqual(rep.stale[0]["staleness"], 0.5)
        self.assertEqual(rep.stale[0]["change"], "touch")

    def test_overlapping_observations_never_flagged(self):
        recs = [initial(d0_f0="644"),
                write("chmod", 1.0, 2.0, d0_f0="600"),
                # Starts before the change returned: old or new both fine.
                obs("d0/f0", 0.5, 1.5, "644"),
                obs("d0/f0", 0.5, 1.5, "600"),
                obs("d0/f0", 1.2, 1.4, "644"),
                obs("d0/f0", 1.9, 3.0, "644"),
                # Starts exactly when the change returned: not after it.
                obs("d0/f0", 2.0, 2.1, "644"),
                # Ends before the change started: only the old state.
                obs("d0/f0", 0.1, 0.2, "644")]
        rep = checker.check(recs, "strict")
        self.assertTrue(rep.ok, rep.format())
        self.assertEqual(rep.observations, 6)

    def test_mixed_fields_only_during_the_op(self):
        recs = [initial(d0_f0="81a4 4 100 7"),
                write("append", 1.0, 1.2, d0_f0="81a4 9 200 7"),
                obs("d0/f0", 1.1, 1.15, "81a4 4 200 7"),   # mtime first
                obs("d0/f0", 1.3, 1.4, "81a4 4 200 7")]    # after: phantom
        rep = checker.check(recs, "strict")
        self.assertEqual(len(rep.phantoms), 1)
        self.assertEqual(rep.phantoms[0]["start"], 1.3)
        self.assertEqual(rep.stale, [])

    def test_future_state_before_change_started_is_phantom(self):
        recs = [initial(d0_f0="644"),
                write("chmod", 1.0, 2.0, d0_f0="600"),
                obs("d0/f0", 0.1, 0.2, "600")]
        rep = checker.check(recs, "strict")
        self.assertFalse(rep.ok)
        self.assertEqual([p["path"] for p in rep.phantoms], ["d0/f0"])
        self.assertEqual(rep.phantoms[0]["elsewhere"], [])
        self.assertEqual(rep.stale, [])

    def test_enoent_after_create_is_stale(self):
        recs = [initial(d1_f2="ENOENT"),
                write("create", 1.0, 1.1, d1_f2="81a4 0 5 7"),
                obs("d1/f2", 0.5, 0.6, "ENOENT"),
                obs("d1/f2", 1.05, 1.2, "ENOENT"),
                obs("d1/f2", 1.3, 1.4, "81a4 0 5 7"),
                obs("d1/f2", 1.6, 1.7, "ENOENT")]
        rep = checker.check(recs, "strict")
        self.assertEqual(len(rep.stale), 1)
        self.assertEqual(rep.stale[0]["path"], "d1/f2")
        self.assertEqual(rep.stale[0]["change"], "create")
        self.assertAlmostEqual(rep.stale[0]["staleness"], 0.5)

    def test_visible_after_unlink_is_stale(self):
        recs = [initial(d0_f1="81a4 4 5 9"),
                write("unlink", 1.0, 1.1, d0_f1="ENOENT"),
                obs("d0/f1", 1.1, 1.2, "81a4 4 5 9"),
                obs("d0/f1", 1.35, 1.4, "81a4 4 5 9"),
                obs("d0/f1", 1.5, 1.6, "ENOENT")]
        rep = checker.check(recs, "strict")
        self.assertEqual(len(rep.stale), 1)
        self.assertEqual(rep.stale[0]["path"], "d0/f1")
        self.assertEqual(rep.stale[0]["change"], "unlink")
        self.assertAlmostEqual(rep.stale[0]["staleness"], 0.25)

    def test_old_name_after_rename_is_stale(self):
        recs = [initial(d0_f0="81a4 4 5 9", d1_f1="ENOENT"),
                write("rename", 1.0, 1.2, d0_f0="ENOENT",
                      d1_f1="81a4 4 5 9"),
                obs("d0/f0", 1.1, 1.15, "81a4 4 5 9"),   # concurrent: fine
                obs("d1/f1", 1.3, 1.4, "81a4 4 5 9"),    # new name: fine
                obs("d0/f0", 2.2, 2.3, "81a4 4 5 9")]    # old name: stale
        rep = checker.check(recs, "strict")
        self.assertEqual(len(rep.stale), 1)
        v = rep.stale[0]
        self.assertEqual((v["path"], v["change"], v["expected"]),
                         ("d0/f0", "rename", "ENOENT"))
        self.assertAlmostEqual(v["staleness"], 1.0)

    def test_phantom_names_the_path_that_had_the_value(self):
        recs = [initial(d0_f0="A", d1_f1="ENOENT"),
                write("rename", 1.0, 1.1, d0_f0="ENOENT", d1_f1="A"),
                write("chmod", 2.0, 2.1, d1_f1="B"),
                obs("d0/f0", 3.0, 3.1, "B")]
        rep = checker.check(recs, "bounded")
        self.assertFalse(rep.ok)
        self.assertEqual(rep.phantoms[0]["elsewhere"], ["d1/f1"])
        # The dentry has been stale at least since d0/f0's last change
        # (the rename returned at 1.1).
        self.assertAlmostEqual(rep.phantoms[0]["age"], 1.9)
        self.assertAlmostEqual(rep.summary()["phantom_max_age_s"], 1.9)

    def test_unchanged_value_does_not_supersede(self):
        # chmod to the same mode: seeing it is current, not stale.
        recs = [initial(d0_f0="644"),
                write("chmod", 1.0, 1.1, d0_f0="644"),
                obs("d0/f0", 2.0, 2.1, "644")]
        self.assertTrue(checker.check(recs, "strict").ok)

    def test_kinds_are_separate_histories(self):
        recs = [initial(d0_f0="644"),
                {"who": "w", "op": "setxattr", "path": "d0/f0", "start": 1.0,
                 "end": 1.1, "result": 0,
                 "after": {"d0/f0": {"getxattr": "v2"}}},
                obs("d0/f0", 2.0, 2.1, "644"),
                obs("d0/f0", 2.0, 2.1, "v2", kind="getxattr")]
        rep = checker.check(recs, "strict")
        self.assertTrue(rep.ok, rep.format())

    def test_percentiles(self):
        recs = [initial(p="0")]
        t = 0.0
        for i in range(1, 101):
            recs.append(write("touch", t + 1, t + 1, p=str(i)))
            recs.append(obs("p", t + 1 + i / 100.0, t + 1 + i / 100.0,
                            str(i - 1)))
            t += 10
        s = checker.check(recs, "bounded").summary()
        self.assertEqual(s["stale"], 100)
        self.assertAlmostEqual(s["max_s"], 1.0)
        self.assertAlmostEqual(s["p50_s"], 0.5)
        self.assertAlmostEqual(s["p99_s"], 0.99)

    def test_unknown_mode_rejected(self):
        with self.assertRaises(ValueError):
            checker.check([], "eventual")


class WorkloadTest(unittest.TestCase):

    def test_seeded_and_valid(self):
        a = [checker.Workload(7).next() for _ in range(200)]
        b = [checker.Workload(7).next() for _ in range(200)]
        self.assertEqual(a, b)
        w = checker.Workload(3)
        ops = [w.next() for _ in range(300)]
        self.assertEqual([o["op"] for o in ops[:8]], list(checker.OPENING))
        existing = set(checker.INITIAL_FILES)
        for o in ops:
            if o["op"] == "create":
                self.assertNotIn(o["path"], existing)
                existing.add(o["path"])
            elif o["op"] == "rename":
                self.assertIn(o["path"], existing)
                self.assertNotIn(o["path2"], existing)
                existing.remove(o["path"])
                existing.add(o["path2"])
            elif o["op"] == "symlink":
                self.assertEqual(o["path"], checker.LINK)
            else:
                self.assertIn(o["path"], existing)
                if o["op"] == "unlink":
                    existing.remove(o["path"])

    def test_guest_value_encoding_matches_host(self):
        self.assertEqual(checker._parse_guest_value("stat", "81a4 12 99 7\n"),
                         "81a4 12 99 7")
        self.assertEqual(checker._parse_guest_value(
            "getxattr", "xattr: get: ENODATA"), "ENODATA")
        self.assertEqual(checker._parse_guest_value("stat", "ENOENT"),
                         "ENOENT")


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed or not result.wasSuccessful() else 0)
