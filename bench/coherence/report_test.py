"""Tests of bench/coherence/report.py and the pure parts of backends.py."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import backends  # noqa: E402
import report  # noqa: E402


def sample(mode, rep, workload, value, ops=100, pass_=0):
    return {"mode": mode, "rep": rep, "workload": workload, "pass": pass_,
            "ops": ops, "seconds": ops / value, "value": value}


S, A, N = "coherefs-strict", "virtiofsd-always", "virtiofsd-none"


class ThroughputTest(unittest.TestCase):

    def test_a_repetition_is_total_ops_over_total_seconds(self):
        thr = report.throughputs([
            sample(S, 0, "tree_stat_warm", 100.0, ops=100),    # 1 s
            sample(S, 0, "tree_stat_warm", 50.0, ops=100),     # 2 s
            sample(S, 0, "tree_readdir_warm", 300.0, ops=300),  # 1 s
            sample(S, 0, "tree_stat_cold", 10.0, ops=100),     # 10 s
            sample(A, 0, "tree_stat_warm", 100.0),  # no readdir: no aggregate
        ])
        self.assertEqual(sorted(thr), [
            (S, "read_mostly_warm", 0), (S, "tree_readdir_warm", 0),
            (S, "tree_stat_cold", 0), (S, "tree_stat_warm", 0),
            (A, "tree_stat_warm", 0)])
        self.assertAlmostEqual(thr[(S, "tree_stat_warm", 0)], 200 / 3)
        self.assertAlmostEqual(thr[(S, "read_mostly_warm", 0)], 500 / 4)
        self.assertAlmostEqual(thr[(S, "tree_stat_cold", 0)], 10.0)


class RatioTest(unittest.TestCase):

    def setUp(self):
        self.samples = []
        # strict: passes of 1 s and 1/9 s (100 ops each): rep 0 -> 200 ops
        # in 10/9 s = 180/s; rep 1: passes 100/s and 300/s (100 ops each)
        # -> 200 ops in 4/3 s = 150/s. always: 100/s flat; none: 10/s (rep
        # 0), 30/s (rep 1).
        for rep, vals in ((0, (100.0, 900.0)), (1, (100.0, 300.0))):
            for i, v in enumerate(vals):
                self.samples.append(sample(S, rep, "tree_stat_warm", v,
                                           pass_=i))
        for rep in (0, 1):
            self.samples.append(sample(A, rep, "tree_stat_warm", 100.0))
            self.samples.append(sample(N, rep, "tree_stat_warm",
                                       10.0 + 20.0 * rep))

    def test_summary_spreads_over_repetitions_and_passes(self):
        rows = report.summarize_read(self.samples, [S, A, N])
        strict = rows[0]
        self.assertEqual((strict["workload"], strict["mode"]),
                         ("tree_stat_warm", S))
        self.assertEqual(strict["reps"]["n"], 2)
        self.assertAlmostEqual(strict["reps"]["median"], 165.0)
        self.assertAlmostEqual(strict["reps"]["min"], 150.0)
        self.assertEqual(strict["passes"]["n"], 4)
        self.assertEqual((strict["passes"]["min"], strict["passes"]["max"]),
                         (100.0, 900.0))
        self.assertEqual([r["mode"] for r in rows], [S, A, N])
        # The aggregate needs warm readdir passes too: none here.
        self.assertEqual({r["workload"] for r in rows}, {"tree_stat_warm"})

    def test_ratios_and_verdict(self):
        rows = report.ratio_rows(self.samples, subjects=(S,))
        self.assertEqual([(r["baseline"], r["target"]) for r in rows],
                         [(A, 0.8), (N, 5.0)])
        self.assertAlmostEqual(rows[0]["ratio"], 1.65)
        self.assertIs(rows[0]["meets"], True)
        # vs none: 165 / median(10, 30) = 8.25.
        self.assertAlmostEqual(rows[1]["ratio"], 8.25)
        self.assertIs(rows[1]["meets"], True)
        # paired vs none: rep 0 180/10 = 18, rep 1 150/30 = 5.
        self.assertAlmostEqual(rows[1]["paired"]["min"], 5.0)
        self.assertAlmostEqual(rows[1]["paired"]["max"], 18.0)
        self.assertEqual(report.verdict(rows), (2, 2, []))

    def test_a_miss_is_named(self):
        for s in self.samples:
            if s["mode"] == S:
                s["value"] /= 10
                s["seconds"] *= 10
        rows = report.ratio_rows(self.samples, subjects=(S,))
        met, rated, missed = report.verdict(rows)
        self.assertEqual((met, rated), (0, 2))
        self.assertEqual(missed, [
            "tree_stat_warm coherefs-strict/virtiofsd-always 0.17x < 0.8x",
            "tree_stat_warm coherefs-strict/virtiofsd-none 0.82x < 5x"])
        table = report.format_ratios(rows).splitlines()
        self.assertEqual(len(table), 4)
        self.assertTrue(table[2].endswith(">= 0.8x   MISSED"), table[2])

    def test_missing_baseline_gives_no_row(self):
        only_strict = [s for s in self.samples if s["mode"] == S]
        self.assertEqual(report.ratio_rows(only_strict), [])

    def test_read_table_has_one_column_per_mode(self):
        rows = report.summarize_read(self.samples, [S, A, N])
        lines = report.format_read(rows, [S, A, N]).splitlines()
        self.assertEqual(lines[0].split(),
                         ["ops/s", S, A, N, "n"])
        self.assertEqual(lines[2].split(),
                         ["tree_stat_warm", "165", "[150-180]", "100",
                          "[100-100]", "20.0", "[10.0-30.0]", "2"])


class StalenessTest(unittest.TestCase):

    def test_strict_violation_is_reported_for_strict_modes_only(self):
        base = {"ops": 24, "observations": 500, "phantoms": 0,
                "max_s": 0.0, "p99_s": 0.0}
        results = {
            "coherefs-strict": dict(base, stale=0, strict_ok=True),
            "coherefs-bounded": dict(base, stale=3, strict_ok=False,
                                     max_s=0.25, p99_s=0.2),
            "virtiofsd-none": {"error": "VmError: boom\nmore"},
        }
        self.assertEqual(report.staleness_verdict(results), [])
        text = report.format_staleness(results, list(results))
        lines = text.splitlines()
        self.assertIn("ok (0 stale)", lines[2])
        self.assertIn("0.250", lines[3])
        self.assertTrue(lines[3].rstrip().endswith("-"))
        self.assertIn("FAILED: VmError: boom", lines[4])
        results["coherefs-strict"] = dict(base, stale=1, strict_ok=False)
        self.assertEqual(report.staleness_verdict(results),
                         ["coherefs-strict"])


class TableBenchTest(unittest.TestCase):

    def test_getattr_over_table_load(self):
        doc = {"series": {
            "table_load": {"median_ns_per_op": 3.0, "min_ns_per_op": 2.0,
                           "max_ns_per_op": 4.0,
                           "samples_ns_per_op": [2.0, 3.0, 4.0]},
            "statx_fuse": {"median_ns_per_op": 24000.0,
                           "min_ns_per_op": 20000.0,
                           "max_ns_per_op": 30000.0,
                           "samples_ns_per_op": [20000.0, 24000.0, 30000.0]}}}
        lines = report.format_table_bench(doc).splitlines()
        self.assertEqual(lines[-1],
                         "GETATTR round trip (statx_fuse) / table load: "
                         "8000x")
        self.assertIn("3.00 [2.00-4.00]", lines[2])


class CoherenceCountsTest(unittest.TestCase):

    def test_mean_strict_wait(self):
        self.assertEqual(report.format_coherence(
            {"leases": 10, "bumps": 4, "strict_waits": 4,
             "strict_wait_s": 0.5}),
            "leases=10 bumps=4 strict_waits=4 mean strict wait 125.0 ms")
        self.assertEqual(report.format_coherence({}), "-")


class MetricsTest(unittest.TestCase):

    TEXT_A = """# HELP coherefs_agent_fuse_requests_total FUSE requests
# TYPE coherefs_agent_fuse_requests_total counter
coherefs_agent_fuse_requests_total{op="LOOKUP"} 10
coherefs_agent_fuse_requests_total{op="SETATTR"} 4
coherefs_agent_fuse_request_duration_seconds_sum{op="SETATTR"} 0.4
coherefs_agent_strict_wait_seconds_count 2
"""
    TEXT_B = """coherefs_agent_fuse_requests_total{op="LOOKUP"} 10
coherefs_agent_fuse_requests_total{op="SETATTR"} 14
coherefs_agent_fuse_requests_total{op="GETATTR"} 5
coherefs_agent_fuse_request_duration_seconds_sum{op="SETATTR"} 2.4
coherefs_agent_strict_wait_seconds_count 12
not a metric line
"""

    def test_delta_and_fuse_ops(self):
        a, b = backends.parse_metrics(self.TEXT_A), backends.parse_metrics(
            self.TEXT_B)
        self.assertEqual(a['coherefs_agent_fuse_requests_total{op="LOOKUP"}'],
                         10.0)
        d = backends.delta(a, b)
        self.assertNotIn('coherefs_agent_fuse_requests_total{op="LOOKUP"}', d)
        ops = backends.fuse_ops(d)
        self.assertEqual(set(ops), {"SETATTR", "GETATTR"})
        self.assertEqual(ops["SETATTR"][0], 10)
        self.assertAlmostEqual(ops["SETATTR"][1], 0.2)
        self.assertEqual(ops["GETATTR"], (5, None))
        self.assertAlmostEqual(backends.mean_ms(ops, "setattr"), 200.0)
        self.assertIsNone(backends.mean_ms(ops, "getattr"))
        self.assertIsNone(backends.mean_ms(ops, "write"))
        self.assertEqual(backends.wait_metrics(d),
                         {"coherefs_agent_strict_wait_seconds_count": 10.0})

    def test_coherence_counts_sum_over_labels(self):
        d = backends.delta(
            backends.parse_metrics(
                'coherefs_agent_strict_waits_total{volume="a"} 1\n'
                'coherefs_agent_strict_waits_total{volume="b"} 2\n'),
            backends.parse_metrics(
                'coherefs_agent_strict_waits_total{volume="a"} 4\n'
                'coherefs_agent_strict_waits_total{volume="b"} 7\n'
                'coherefs_agent_strict_wait_seconds_total{volume="a"} 0.5\n'
                'coherefs_agent_live_leases{volume="a"} 9\n'))
        self.assertEqual(backends.coherence_counts(d),
                         {"strict_waits": 8.0, "strict_wait_s": 0.5})

    def test_unreachable_endpoint_scrapes_empty(self):
        port = backends.free_port()  # nothing listens there
        self.assertEqual(backends.scrape("http://127.0.0.1:%d/metrics" % port,
                                         timeout=2), {})


class AgentArgvTest(unittest.TestCase):

    def test_two_hosts_get_distinct_ids_and_the_coherence_flag(self):
        pair = backends.make_backend("coherefs-bounded", agent_bin="/a",
                                     coordinator_bin="/c",
                                     agent_args=["--lease-max-ms=100"])
        self.assertEqual((pair.sockets_mode, pair.cache, pair.extra_args),
                         ("per-guest", "always", ["--lease-max-ms=100"]))
        pair.coordinator_target = "127.0.0.1:5000"
        self.assertEqual(pair.own_args(1, 9001), [
            "--coordinator=127.0.0.1:5000", "--agent-id=bench-host1",
            "--metrics-listen=127.0.0.1:9001", "--coherence=bounded"])
        # vmlib asks per agent; each gets a port of its own and a URL.
        a0, a1 = pair.per_agent_args(0), pair.per_agent_args(1)
        self.assertEqual((a0[1], a1[1]), ("--agent-id=bench-host0",
                                          "--agent-id=bench-host1"))
        self.assertEqual(pair.metrics_urls, [
            "http://127.0.0.1:%s/metrics" % a[2].rsplit(":", 1)[1]
            for a in (a0, a1)])
        old = backends.make_backend("coherefs-strict", agent_bin="/a",
                                    coordinator_bin="/c",
                                    pass_coherence=False)
        old.coordinator_target = "127.0.0.1:5000"
        self.assertEqual([a for a in old.own_args(0, 1) if "coherence" in a],
                         [])

    def test_every_mode_maps_to_a_backend_setting(self):
        self.assertEqual(backends.MODES["virtiofsd-none"],
                         ("virtiofsd", "none", None))
        self.assertEqual(backends.MODES["coherefs-strict"],
                         ("coherefs", "always", "strict"))
        self.assertEqual(len(backends.DEFAULT_MODES), 5)


if __name__ == "__main__":
    unittest.main()
