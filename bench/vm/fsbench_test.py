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
                                 ((), ())]:
            p = self.run_fsbench(*workloads, extra=extra)
            self.assertEqual(p.returncode, 2, (extra, workloads, p.stderr))
            self.assertEqual(p.stdout, "")
        self.assertFalse(os.path.exists(self.dir))


if __name__ == "__main__":
    unittest.main()
