"""Tests of bench/vm/stats.py: exact figures for hand-made samples."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import stats  # noqa: E402


def sample(rnd, system, workload, value, cache="none", unit="ops/s"):
    return {"round": rnd, "cache": cache, "system": system,
            "workload": workload, "unit": unit, "value": value}


class QuantileTest(unittest.TestCase):

    def test_interpolates_between_ranks(self):
        xs = [4.0, 1.0, 3.0, 2.0]
        self.assertEqual(stats.quantile(xs, 0.0), 1.0)
        self.assertEqual(stats.quantile(xs, 1.0), 4.0)
        self.assertEqual(stats.median(xs), 2.5)
        self.assertEqual(stats.quantile(xs, 0.25), 1.75)
        self.assertEqual(stats.quantile(xs, 0.75), 3.25)

    def test_single_value(self):
        self.assertEqual(stats.spread([7.0]), {
            "n": 1, "median": 7.0, "min": 7.0, "max": 7.0, "q1": 7.0,
            "q3": 7.0})

    def test_no_values_raises(self):
        with self.assertRaises(ValueError):
            stats.median([])


class SummarizeTest(unittest.TestCase):

    def test_ratio_of_medians_and_paired_ratios(self):
        samples = [
            sample(0, "a", "stat", 200.0), sample(0, "b", "stat", 100.0),
            sample(1, "a", "stat", 300.0), sample(1, "b", "stat", 100.0),
            sample(2, "a", "stat", 100.0), sample(2, "b", "stat", 200.0),
        ]
        [row] = stats.summarize(samples, "a", "b")
        self.assertEqual(row["cache"], "none")
        self.assertEqual(row["workload"], "stat")
        self.assertEqual(row["systems"]["a"]["median"], 200.0)
        self.assertEqual(row["systems"]["b"]["median"], 100.0)
        self.assertEqual(row["systems"]["b"]["max"], 200.0)
        self.assertEqual(row["ratio"], 2.0)
        # Per round: 2.0, 3.0, 0.5.
        self.assertEqual(row["paired"]["median"], 2.0)
        self.assertEqual(row["paired"]["min"], 0.5)
        self.assertEqual(row["paired"]["max"], 3.0)
        self.assertIs(row["meets_target"], True)

    def test_order_of_first_appearance_and_units(self):
        samples = [
            sample(0, "a", "w2", 1.0, unit="MiB/s"),
            sample(0, "a", "w1", 1.0),
            sample(0, "a", "w1", 1.0, cache="always"),
            sample(0, "b", "w2", 4.0, unit="MiB/s"),
        ]
        rows = stats.summarize(samples, "a", "b")
        self.assertEqual([(r["cache"], r["workload"]) for r in rows],
                         [("none", "w2"), ("none", "w1"), ("always", "w1")])
        self.assertEqual(rows[0]["unit"], "MiB/s")
        self.assertEqual(rows[0]["ratio"], 0.25)
        self.assertIs(rows[0]["meets_target"], False)
        # Only the subject ran w1: no ratio, no verdict.
        self.assertIsNone(rows[1]["ratio"])
        self.assertIsNone(rows[1]["paired"])
        self.assertIsNone(rows[1]["meets_target"])

    def test_pairs_only_rounds_both_ran(self):
        samples = [sample(0, "a", "w", 10.0), sample(0, "b", "w", 5.0),
                   sample(1, "a", "w", 30.0)]
        [row] = stats.summarize(samples, "a", "b")
        self.assertEqual(row["ratio"], 4.0)  # median(10, 30) / 5
        self.assertEqual(row["paired"]["n"], 1)
        self.assertEqual(row["paired"]["median"], 2.0)

    def test_verdict(self):
        samples = [sample(0, "a", "fast", 2.0), sample(0, "b", "fast", 1.0),
                   sample(0, "a", "slow", 1.0), sample(0, "b", "slow", 4.0),
                   sample(0, "a", "lonely", 1.0)]
        rows = stats.summarize(samples, "a", "b")
        self.assertEqual(stats.verdict(rows), (1, 2, ["none/slow 0.25x"]))


class TableTest(unittest.TestCase):

    def test_exact_table(self):
        samples = [sample(0, "a", "stat_warm", 1500.0),
                   sample(0, "b", "stat_warm", 500.0),
                   sample(1, "a", "stat_warm", 2500.0),
                   sample(1, "b", "stat_warm", 1500.0),
                   sample(0, "a", "seq_read", 12.5, unit="MiB/s"),
                   sample(0, "b", "seq_read", 25.0, unit="MiB/s"),
                   sample(0, "a", "other", 1.0, cache="always")]
        rows = stats.summarize(samples, "a", "b")
        table = stats.format_table(rows, "none", "a", "b")
        # stat_warm: medians 2000 / 1000; per round 1500/500 = 3 and
        # 2500/1500 = 1.67, whose median is 2.33.
        self.assertEqual(table.splitlines(), [
            "workload   unit                  a                 b  ratio"
            "  paired ratio [min-max]",
            "---------  -----  ----------------  ----------------  -----"
            "  ----------------------",
            "stat_warm  ops/s  2000 [1500-2500]   1000 [500-1500]  2.00x"
            "        2.33 [1.67-3.00]",
            "seq_read   MiB/s  12.5 [12.5-12.5]  25.0 [25.0-25.0]  0.50x"
            "        0.50 [0.50-0.50]",
        ])
        self.assertNotIn("other", table)

    def test_fmt(self):
        self.assertEqual(stats.fmt(None), "-")
        self.assertEqual(stats.fmt(12345.6), "12346")
        self.assertEqual(stats.fmt(12.34), "12.3")
        self.assertEqual(stats.fmt(1.234), "1.23")
        self.assertEqual(stats.fmt(0.1234), "0.123")


if __name__ == "__main__":
    unittest.main()
