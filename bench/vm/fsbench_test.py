"""Tests of bench/vm/fsbench.c on a temporary directory of the host.

Runs the Bazel-built //bench/vm:fsbench (or $FSBENCH when run by hand) with
small sizes and checks exact op counts, the data file's block stamps and the
exit statuses of the error paths. --drop-caches=0 throughout: dropping would
empty the whole host's caches.
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import unittest


def fsbench_path():
    if os.environ.get("FSBENCH"):
        return os.environ["FSBENCH"]
    return os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                        "bench", "vm", "fsbench")


FILES, TREE, CREATE, SEQ_MIB, RAND_OPS, PASSES = 300, (3, 2, 4), 40, 1, 100, 2
BLOCK = 4096
TREE_ENTRIES = TREE[0] + TREE[0] * TREE[1] + TREE[0] * TREE[1] * TREE[2]


class FsbenchTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fsbench_test.",
                                    dir=os.environ.get("TEST_TMPDIR"))
        self.dir = os.path.join(self.tmp, "b")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_fsbench(self, *workloads, extra=()):
        argv = [fsbench_path(), "--dir=" + self.dir, "--drop-caches=0",
                "--files=%d" % FILES, "--tree=%d,%d,%d" % TREE,
                "--create=%d" % CREATE, "--seq-mib=%d" % SEQ_MIB,
                "--rand-ops=%d" % RAND_OPS, "--warm-passes=%d" % PASSES]
        return subprocess.run(argv + list(extra) + list(workloads),
                              capture_output=True, text=True, timeout=120)

    def records(self, *workloads):
        p = self.run_fsbench(*workloads)
        self.assertEqual(p.returncode, 0, p.stderr)
        return {r["name"]: r for r in map(json.loads, p.stdout.splitlines())}

    def stamps(self):
        with open(os.path.join(self.dir, "data"), "rb") as f:
            data = f.read()
        return [struct.unpack_from("<Q", data, off)[0]
                for off in range(0, len(data), BLOCK)]

    def test_setup_builds_the_tree(self):
        r = self.records("setup")["setup_create"]
        self.assertEqual(r["ops"], FILES + TREE_ENTRIES)
        self.assertEqual(len(os.listdir(os.path.join(self.dir, "flat"))), FILES)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "flat",
                                                    "f%05d" % (FILES - 1))))
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "tree"))),
                         ["d00", "d01", "d02"])
        self.assertEqual(sorted(os.listdir(os.path.join(
            self.dir, "tree", "d02", "s01"))), ["f00", "f01", "f02", "f03"])

    def test_every_workload_counts_exactly(self):
        self.records("setup")
        got = self.records("all")
        self.assertEqual(list(got), [
            "stat_cold", "stat_warm", "readdir", "readdir_stat", "walk_cold",
            "walk_warm", "create", "unlink", "seq_write", "seq_read",
            "rand_write", "rand_read"])
        blocks = SEQ_MIB * 1024 * 1024 // BLOCK
        want_ops = {
            "stat_cold": FILES, "stat_warm": FILES * PASSES,
            # getdents64 also returns "." and "..".
            "readdir": (FILES + 2) * PASSES,
            "readdir_stat": (FILES + 2) * PASSES,
            "walk_cold": TREE_ENTRIES, "walk_warm": TREE_ENTRIES * PASSES,
            "create": CREATE, "unlink": CREATE,
            "seq_write": blocks, "seq_read": blocks,
            "rand_write": RAND_OPS, "rand_read": RAND_OPS,
        }
        self.assertEqual({k: v["ops"] for k, v in got.items()}, want_ops)
        for name, r in got.items():
            data = name.startswith(("seq_", "rand_"))
            self.assertEqual(r["bytes"], r["ops"] * BLOCK if data else 0, name)
            self.assertGreater(r["seconds"], 0, name)
            # "seconds" is printed to 1 us: allow that rounding in the rate.
            rate = r["ops"] / r["seconds"]
            self.assertAlmostEqual(r["ops_per_s"], rate,
                                   delta=0.1 + rate * 1e-6 / r["seconds"])
            self.assertIs(r["dropped_caches"], False, name)
        # create_unlink leaves its directory empty.
        self.assertEqual(os.listdir(os.path.join(self.dir, "cu")), [])
        # Every block carries its own index, also after the random writes.
        self.assertEqual(self.stamps(), list(range(blocks)))

    def lines(self, *workloads, extra=()):
        p = self.run_fsbench(*workloads, extra=extra)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [json.loads(line) for line in p.stdout.splitlines()]

    def test_tree_passes_count_exactly(self):
        self.records("setup")
        got = self.lines("tree_stat", "tree_readdir", "tree_stat_warm",
                         "tree_readdir_cold")
        files = TREE[0] * TREE[1] * TREE[2]
        # Every listing includes "." and "..": the root, each dNN, each sNN.
        listed = (TREE[0] + 2) + TREE[0] * (TREE[1] + 2) + \
            TREE[0] * TREE[1] * (TREE[2] + 2)
        want = ([("tree_stat_cold", files)] +
                [("tree_stat_warm", files)] * PASSES +
                [("tree_readdir_cold", listed)] +
                [("tree_readdir_warm", listed)] * PASSES +
                [("tree_stat_warm", files)] * PASSES +
                [("tree_readdir_cold", listed)])
        self.assertEqual([(r["name"], r["ops"]) for r in got], want)
        for r in got:
            self.assertIs(r["dropped_caches"], False)
            self.assertGreater(r["seconds"], 0)

    def test_warm_seconds_adds_passes(self):
        self.records("setup")
        t0 = time.monotonic()
        got = self.lines("tree_stat_warm", extra=("--warm-seconds=1",))
        self.assertGreaterEqual(time.monotonic() - t0, 1.0)
        # A pass of this tree takes far less than 1 s / PASSES.
        self.assertGreater(len(got), PASSES)
        self.assertEqual({r["name"] for r in got}, {"tree_stat_warm"})
        self.assertEqual({r["ops"] for r in got},
                         {TREE[0] * TREE[1] * TREE[2]})

    def test_shared_write_counts_its_ops(self):
        os.mkdir(self.dir)  # DIR must exist; DIR/shared is made if missing
        got = self.lines("shared_write",
                         extra=("--seconds=1", "--shared-files=2"))
        self.assertEqual([r["name"] for r in got], [
            "shared_chmod", "shared_touch", "shared_append", "shared_write"])
        by = {r["name"]: r for r in got}
        kinds = [by[k]["ops"] for k in ("shared_chmod", "shared_touch",
                                        "shared_append")]
        # Ops cycle chmod, touch, append: counts differ by at most one.
        self.assertLessEqual(max(kinds) - min(kinds), 1)
        self.assertEqual(sum(kinds), by["shared_write"]["ops"])
        self.assertGreater(by["shared_write"]["ops"], 3)
        for r in got:
            self.assertGreaterEqual(r["seconds"], 1.0)
            self.assertLessEqual(r["lat_p50_us"], r["lat_p99_us"])
            self.assertLessEqual(r["lat_p99_us"], r["lat_max_us"])
        # Each append adds one byte to file (visit % 2).
        shared = os.path.join(self.dir, "shared")
        self.assertEqual(sorted(os.listdir(shared)), ["f0", "f1"])
        self.assertEqual(sum(os.path.getsize(os.path.join(shared, f))
                             for f in ("f0", "f1")),
                         by["shared_append"]["ops"])

    def test_corrupted_block_fails_the_read(self):
        self.records("setup", "seq_write")
        with open(os.path.join(self.dir, "data"), "r+b") as f:
            f.seek(5 * BLOCK)
            f.write(struct.pack("<Q", 77))
        p = self.run_fsbench("seq_read")
        self.assertEqual(p.returncode, 1)
        self.assertIn("block 5 holds stamp 77", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_missing_directory_fails(self):
        p = self.run_fsbench("stat")
        self.assertEqual(p.returncode, 1)
        self.assertIn("No such file or directory", p.stderr)

    def test_usage_errors_exit_2(self):
        for extra, workloads in [((), ("no_such_workload",)),
                                 (("--files=0",), ("stat",)),
                                 (("--files=x",), ("stat",)),
                                 (("--tree=1,2",), ("setup",)),
                                 (("--block-size=3000",), ("seq_write",)),
                                 (("--bogus=1",), ("stat",)),
                                 (("--seconds=0",), ("shared_write",)),
                                 (("--shared-files=0",), ("shared_write",)),
                                 (("--warm-seconds=-1",), ("tree_stat",)),
                                 ((), ())]:
            p = self.run_fsbench(*workloads, extra=extra)
            self.assertEqual(p.returncode, 2, (extra, workloads, p.stderr))
            self.assertEqual(p.stdout, "")
        self.assertFalse(os.path.exists(self.dir))


if __name__ == "__main__":
    unittest.main()
