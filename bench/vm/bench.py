#!/usr/bin/python3
"""In-guest data-path benchmark: coherefs-agent vs virtiofsd, side by side.

For each cache mode (--caches, default none,always) it boots two guests with
identical VM settings (tests/vm/vmlib: same kernel, initramfs, memory, one
vCPU, default virtqueue size, same --thread-pool-size), one on each backend,
each the only guest of its backend; both stay up for all rounds of the mode.

Each round:
  1. the host populates <share>/r<round> of both shares with
     bench/vm/fsbench.c's `setup` (10k files in one directory + a tree),
     untimed, before either guest has looked there;
  2. for each workload, one guest runs `fsbench --dir=/mnt/r<round>
     WORKLOAD`, then the other does. Who goes first alternates by round and
     by workload, so a pair's two figures are seconds apart under the same
     machine load and neither system always follows the other. Only one
     guest works at a time; the other idles (< 1% of a core under TCG).
Each fsbench command prints JSON lines that become samples; timing is
inside the guest (CLOCK_MONOTONIC around each loop). A workload that fails
ends that system's round (later workloads depend on earlier ones).

Systems: the subject is coherefs-agent (--agent-bin), the baseline QEMU's
virtiofsd. --stand-in runs virtiofsd in the subject's place too (an A/A run:
the ratios then show the noise floor, and it needs no agent).

Writes --out-json (meta, sessions, samples, summary), --out-csv (samples) and
prints one table per cache mode. Exit status: 0 everything ran, 1 something
failed (the rest is still reported and written), 2 bad usage.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
sys.path.insert(0, HERE)
import runinfo  # noqa: E402
import stats  # noqa: E402
import vmlib  # noqa: E402

FSBENCH_C = os.path.join(HERE, "fsbench.c")
WORKLOADS = ("stat", "readdir", "readdir_stat", "walk", "create_unlink",
             "seq_write", "seq_read", "rand_write", "rand_read")
SUBJECT, BASELINE = "coherefs", "virtiofsd"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--rounds", type=int, default=4,
                   help="even: each system goes first equally often")
    p.add_argument("--caches", default="none,always",
                   help="comma-separated cache modes (none, auto, always)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help="comma-separated fsbench workloads, in order")
    p.add_argument("--agent-bin", default=os.environ.get("COHEREFS_AGENT_BIN"),
                   help="coherefs-agent binary (the subject)")
    p.add_argument("--agent-arg", action="append", default=[],
                   help="extra coherefs-agent argument (repeatable)")
    p.add_argument("--stand-in", action="store_true",
                   help="run virtiofsd as the subject too (A/A run)")
    p.add_argument("--virtiofsd-bin", default=vmlib.VIRTIOFSD)
    p.add_argument("--thread-pool-size", type=int, default=2,
                   help="both backends")
    p.add_argument("--log-level", default="warn", help="both backends")
    g = p.add_argument_group("sizes (fsbench flags)")
    g.add_argument("--files", type=int, default=10000,
                   help="files in the flat directory (stat, readdir)")
    g.add_argument("--tree", default="10,10,20",
                   help="walk tree: dirs,subdirs per dir,files per subdir")
    g.add_argument("--create", type=int, default=500,
                   help="files created then unlinked")
    g.add_argument("--seq-mib", type=int, default=16)
    g.add_argument("--rand-ops", type=int, default=1024)
    g.add_argument("--block-size", type=int, default=4096)
    g.add_argument("--warm-passes", type=int, default=1)
    g.add_argument("--seed", type=int, default=1)
    runinfo.add_guest_run_arguments(p, vmlib, workload_timeout=900)
    args = p.parse_args(argv)
    args.caches = [c for c in args.caches.split(",") if c]
    args.workloads = [w for w in args.workloads.split(",") if w]
    bad = [c for c in args.caches if c not in ("none", "auto", "always")]
    bad += [w for w in args.workloads if w not in WORKLOADS]
    if bad or args.rounds < 1:
        p.error("bad --caches/--workloads/--rounds: %s" % (bad or args.rounds))
    if not args.stand_in and not args.agent_bin:
        p.error("--agent-bin (or COHEREFS_AGENT_BIN) is required unless "
                "--stand-in")
    # The subject's name in every sample, row and table: an A/A run must
    # never be mistaken for coherefs figures.
    args.subject = "virtiofsd#2" if args.stand_in else SUBJECT
    return args


def fsbench_flags(args):
    return ["--files=%d" % args.files, "--tree=" + args.tree,
            "--create=%d" % args.create, "--seq-mib=%d" % args.seq_mib,
            "--rand-ops=%d" % args.rand_ops,
            "--block-size=%d" % args.block_size,
            "--warm-passes=%d" % args.warm_passes, "--seed=%d" % args.seed]


def build_host_fsbench(workdir):
    """The same source, built for the host: it populates the share."""
    exe = os.path.join(workdir, "fsbench")
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", exe, FSBENCH_C],
                   check=True)
    return exe


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def make_backend(system, cache, args):
    common = dict(cache=cache, thread_pool_size=args.thread_pool_size,
                  log_level=args.log_level)
    if system == BASELINE or args.stand_in:
        return vmlib.VirtiofsdBackend(binary=args.virtiofsd_bin, **common)
    return vmlib.CoherefsBackend(args.agent_bin, sockets="shared",
                                 extra_args=args.agent_arg, **common)


def boot_both(cache, args):
    """Boots one single-guest Cluster per system in parallel. Returns
    {system: entered Cluster}; on any failure exits those that booted and
    raises."""
    clusters, errors = {}, []

    def boot(system):
        try:
            c = vmlib.Cluster(make_backend(system, cache, args), 1,
                              kernel_dir=args.kernel_dir,
                              helpers=[FSBENCH_C], keep=args.keep,
                              boot_deadline_s=args.boot_deadline)
            clusters[system] = c.__enter__()
        except Exception as e:  # reported by the caller, for every system
            errors.append("%s: %s" % (system, e))
    threads = [threading.Thread(target=boot, args=(s,), daemon=True)
               for s in (args.subject, BASELINE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for c in clusters.values():
            c.__exit__(None, None, None)
        raise vmlib.VmError("boot (cache=%s) failed: %s" % (cache,
                                                            "; ".join(errors)))
    return clusters


def parse_fsbench(out):
    records = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def setup_share(cluster, rnd, args, host_fsbench):
    """Populates <share>/r<round> from the host (untimed; the guest has
    not looked there yet, so it has nothing cached)."""
    out = subprocess.run(
        [host_fsbench, "--dir=" + os.path.join(cluster.shared_dir, "r%d" % rnd),
         "--drop-caches=0"] + fsbench_flags(args) + ["setup"],
        check=True, capture_output=True, text=True).stdout
    return parse_fsbench(out)


def run_workload(cluster, rnd, workload, args):
    """One fsbench workload in this cluster's guest on /mnt/r<round>;
    returns its JSON records."""
    cmd = "fsbench --dir=/mnt/r%d %s %s" % (rnd, " ".join(fsbench_flags(args)),
                                            workload)
    rc, out = cluster.guests[0].run(cmd, timeout=args.workload_timeout)
    if rc != 0:
        raise vmlib.VmError("fsbench %s exited %d in the guest:\n%s" %
                            (workload, rc, out))
    return parse_fsbench(out)


def _value(record):
    if record["bytes"] > 0:
        return record["mib_per_s"], "MiB/s"
    return record["ops_per_s"], "ops/s"


def machine_notes(args):
    notes = runinfo.vm_machine_notes(vmlib, args.kernel_dir, REPO,
                                     args.thread_pool_size)
    notes.update({
        "virtqueue_size": "QEMU default",
        "agent_bin": None if args.stand_in else args.agent_bin,
        "agent_sha256": None if args.stand_in else runinfo.sha256_of(args.agent_bin),
        "agent_args": args.agent_arg, "virtiofsd_bin": args.virtiofsd_bin,
        "stand_in": args.stand_in,
        "sizes": {"files": args.files, "tree": args.tree,
                  "create": args.create, "seq_mib": args.seq_mib,
                  "rand_ops": args.rand_ops, "block_size": args.block_size,
                  "warm_passes": args.warm_passes, "seed": args.seed},
        "rounds": args.rounds, "caches": args.caches,
        "workloads": args.workloads,
    })
    return notes


def write_csv(path, samples):
    cols = ["round", "cache", "system", "order", "workload", "unit", "value",
            "ops", "seconds", "dropped_caches", "loadavg_1m"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for s in samples:
            w.writerow(s)


def run_round(clusters, cache, rnd, args, host_fsbench, samples, sessions,
              failures, log):
    """One round: both shares populated, then every workload on both
    systems back to back. Who goes first alternates by round and by
    workload, so neither system always follows the other, and the two
    figures of a pair are seconds apart (the load drifts over minutes)."""
    systems = [args.subject, BASELINE]
    log("  round %d/%d (cache=%s)" % (rnd + 1, args.rounds, cache))
    broken = set()
    for system in systems:
        try:
            setup = setup_share(clusters[system], rnd, args, host_fsbench)
            sessions.append({"event": "setup", "cache": cache,
                             "system": system, "round": rnd,
                             "host_setup": setup})
        except subprocess.CalledProcessError as e:
            failures.append("%s %s round %d setup: %s" % (cache, system, rnd,
                                                          e))
            broken.add(system)
    # The host's writeback of 12k new inodes must not land inside whichever
    # guest's workload runs first.
    os.sync()
    for i, workload in enumerate(args.workloads):
        order = systems if (rnd + i) % 2 == 0 else systems[::-1]
        cells = []
        for pos, system in enumerate(order):
            if system in broken:
                continue
            load = loadavg()[0]
            t0 = time.monotonic()
            try:
                records = run_workload(clusters[system], rnd, workload, args)
            except (vmlib.VmError, TimeoutError) as e:
                failures.append("%s %s round %d %s: %s" % (
                    cache, system, rnd, workload, e))
                log("    FAILED %s %s: %s" % (system, workload,
                                              str(e).splitlines()[0]))
                # Later workloads depend on earlier ones (seq_read reads
                # what seq_write wrote): skip this system for the round.
                broken.add(system)
                continue
            cells.append("%s %.1fs %s" % (system, time.monotonic() - t0, " ".join(
                "%s=%s" % (r["name"], stats.fmt(_value(r)[0]))
                for r in records)))
            for r in records:
                value, unit = _value(r)
                samples.append({
                    "round": rnd, "cache": cache, "system": system,
                    "order": pos, "workload": r["name"], "unit": unit,
                    "value": value, "ops": r["ops"], "seconds": r["seconds"],
                    "dropped_caches": r["dropped_caches"],
                    "loadavg_1m": load})
        log("    %-13s %s" % (workload, " | ".join(cells)))


def main(argv):
    args = parse_args(argv)
    vmlib.install_signal_handlers()
    vmlib.ensure_kernel(args.kernel_dir)
    label = args.subject

    def log(msg):
        print(msg, flush=True)

    meta = machine_notes(args)
    meta["started_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["loadavg_start"] = loadavg()
    samples, sessions, failures = [], [], []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vmbench.") as tmp:
        host_fsbench = build_host_fsbench(tmp)
        for cache in args.caches:
            log("cache=%s: booting one guest per backend (%s, %s)" %
                (cache, label, BASELINE))
            try:
                clusters = boot_both(cache, args)
            except vmlib.VmError as e:
                failures.append(str(e))
                log("  FAILED: %s" % e)
                continue
            try:
                for name, c in clusters.items():
                    g = c.guests[0]
                    sessions.append({"cache": cache, "system": name,
                                     "event": "boot", "accel": c.accel,
                                     "mounted_after_s": g.mounted_after_s,
                                     "ready_after_s": g.ready_after_s})
                for rnd in range(args.rounds):
                    run_round(clusters, cache, rnd, args, host_fsbench,
                              samples, sessions, failures, log)
            finally:
                for c in clusters.values():
                    c.__exit__(None, None, None)

    meta["loadavg_end"] = loadavg()
    meta["wall_seconds"] = time.monotonic() - t_start
    rows = stats.summarize(samples, label, BASELINE)
    print()
    print("In-guest benchmark, %s vs %s (%d rounds, alternating order; "
          "median [min-max] over rounds; ratio = %s/%s, >1 = %s faster)" % (
              label, BASELINE, args.rounds, label, BASELINE, label))
    print("host: %d cores, load average %s at start, %s at end; guest: %s, "
          "1 vCPU, %s, thread pool %d" % (
              meta["nproc"], " ".join("%.1f" % x for x in meta["loadavg_start"]),
              " ".join("%.1f" % x for x in meta["loadavg_end"]),
              meta["guest_mem"], meta["accel"], args.thread_pool_size))
    for cache in args.caches:
        print()
        print("cache=%s" % cache)
        print(stats.format_table(rows, cache, label, BASELINE))
    met, rated, below = stats.verdict(rows)
    print()
    print("target >= 1.0x %s on every row: %d of %d rows meet it%s" % (
        BASELINE, met, rated, "" if not below else "; below: " +
        ", ".join(below)))
    if failures:
        print("FAILED sessions (%d):" % len(failures))
        for f in failures:
            print("  " + f.splitlines()[0])
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump({"meta": meta, "sessions": sessions, "samples": samples,
                       "summary": rows, "failures": failures,
                       "subject": label, "baseline": BASELINE}, f, indent=1)
    if args.out_csv:
        write_csv(args.out_csv, samples)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
