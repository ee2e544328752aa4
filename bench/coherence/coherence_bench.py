#!/usr/bin/python3
"""Issue 4's benchmark: coherence modes vs virtiofsd, in TCG guests.

One run, five modes side by side (bench/coherence/backends.py):
coherefs strict and bounded (one coordinator, two agents = two "hosts"),
virtiofsd cache=always, auto and none (one virtiofsd per guest). Every mode
serves one shared directory to TWO guests (tests/vm/vmlib.Cluster).

1. read-mostly. Before any daemon or guest starts, the host makes one tree
   per repetition, <share>/t<r>/tree/dNN/s00/fNN (--tree, default 100
   dirs x 1 subdir x 100 files = 10,000 files), with fsbench `setup`. All
   modes' clusters are booted, then for each repetition the modes take
   turns (order rotated per repetition), guest g0 running
   bench/vm/fsbench.c in its mode:
     tree_stat_cold     drop caches, one pass: open each subdir O_PATH,
                        fstatat() each file (lookup + getattr)
     tree_stat_warm     --warm-passes passes, nothing dropped
     tree_readdir_cold  drop caches, open + getdents64 of every directory
     tree_readdir_warm  --warm-passes passes
   one figure (ops/s) per pass, timed inside the guest. The agent's
   /metrics is scraped around each phase (FUSE requests per opcode).
2. write-shared. Per mode, both guests run fsbench shared_write on the same
   --shared-files files for --write-seconds at once (chmod, touch, append
   one byte, cycling): ops/s per guest and per-op latency; for coherefs the
   agents' SETATTR mean duration (the strict wait is inside it) and any
   strict/wait/lease metric the agents expose.
3. staleness. Per mode, tests/coherence/checker.py's VmDriver on a fresh
   cluster of the same mode (one writer guest, one reader guest,
   --staleness-ops changes) and its check(): max/p99 staleness for every
   mode, and for coherefs-strict the strict check (no stale read allowed).
Also: figures of bench/table (table load vs GETATTR round trip) when
--table-json names its result.

Prints the tables, the ratios against the targets (coherefs strict/bounded
warm read-mostly >= 0.8x virtiofsd always and >= 5x none) and writes
--out-json / --out-csv. Exit status: 0 when everything ran (targets missed
or not), 1 when a phase failed, a strict check found a stale read, or
nothing was measured; 2 on bad usage.
"""

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
sys.path.insert(0, os.path.join(REPO, "tests", "coherence"))
sys.path.insert(0, os.path.join(REPO, "bench", "vm"))
sys.path.insert(0, HERE)
import backends  # noqa: E402
import checker  # noqa: E402
import report  # noqa: E402
import runinfo  # noqa: E402
import vmlib  # noqa: E402

FSBENCH_C = os.path.join(REPO, "bench", "vm", "fsbench.c")
PHASES = ("read", "write", "staleness")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--modes", default=",".join(backends.DEFAULT_MODES),
                   help="comma-separated, from: " +
                   ", ".join(backends.MODES))
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--reps", type=int, default=3,
                   help="read-mostly repetitions (a fresh tree each)")
    p.add_argument("--warm-passes", type=int, default=2,
                   help="at least this many warm passes per repetition and "
                   "workload")
    p.add_argument("--warm-seconds", type=int, default=10,
                   help="and more warm passes until this long (default: "
                   "twice the agent's default --lease-max-ms, so expiring "
                   "leases show)")
    p.add_argument("--tree", default="100,1,100",
                   help="dirs,subdirs per dir,files per subdir")
    p.add_argument("--write-seconds", type=int, default=15,
                   help="the first change of each file waits out a full "
                   "lease in strict mode; later ones are what matters")
    p.add_argument("--shared-files", type=int, default=4)
    p.add_argument("--staleness-ops", type=int, default=24,
                   help="writer changes per staleness check")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--agent-bin", default=os.environ.get("COHEREFS_AGENT_BIN"))
    p.add_argument("--coordinator-bin",
                   default=os.environ.get("COHEREFS_COORDINATOR_BIN"))
    p.add_argument("--agent-arg", action="append", default=[],
                   help="extra coherefs-agent argument (repeatable)")
    p.add_argument("--no-coherence-flag", action="store_true",
                   help="pass no --coherence to the agents (agents that "
                   "predate it; strict and bounded are then the same)")
    p.add_argument("--thread-pool-size", type=int, default=2,
                   help="every backend")
    p.add_argument("--log-level", default="warn", help="every backend")
    p.add_argument("--table-json", help="bench/table result to include")
    runinfo.add_guest_run_arguments(p, vmlib, workload_timeout=600)
    args = p.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    args.phases = [x for x in args.phases.split(",") if x]
    bad = [m for m in args.modes if m not in backends.MODES]
    bad += [x for x in args.phases if x not in PHASES]
    if bad or not args.modes or args.reps < 1 or args.warm_passes < 1:
        p.error("bad --modes/--phases/--reps/--warm-passes: %s" % bad)
    try:
        args.tree_dims = [int(x) for x in args.tree.split(",")]
        assert len(args.tree_dims) == 3 and min(args.tree_dims) >= 1
        assert max(args.tree_dims[:2]) <= 100
    except (ValueError, AssertionError):
        p.error("--tree wants D,S,F (D,S in 1..100)")
    if any(backends.MODES[m][0] == "coherefs" for m in args.modes):
        if not args.agent_bin or not args.coordinator_bin:
            p.error("coherefs modes need --agent-bin and --coordinator-bin")
    return args


def log(msg):
    print(msg, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def parse_fsbench(out):
    return [json.loads(line) for line in out.splitlines()
            if line.strip().startswith("{")]


def build_host_fsbench(workdir):
    exe = os.path.join(workdir, "fsbench")
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", exe, FSBENCH_C],
                   check=True)
    return exe


def make_prepare(args, host_fsbench):
    """The host side of every share, made before its daemons start: one
    tree per repetition and the write-shared files."""
    def prepare(shared_dir):
        if "read" in args.phases:
            for r in range(args.reps):
                subprocess.run(
                    [host_fsbench, "--dir=%s/t%d" % (shared_dir, r),
                     "--drop-caches=0", "--files=1", "--tree=" + args.tree,
                     "setup"], check=True, capture_output=True)
        wdir = os.path.join(shared_dir, "w", "shared")
        os.makedirs(wdir)
        for k in range(args.shared_files):
            with open(os.path.join(wdir, "f%d" % k), "w"):
                pass
        os.sync()  # the host's writeback must not land inside a pass
    return prepare


def new_backend(mode, args):
    return backends.make_backend(
        mode, agent_bin=args.agent_bin,
        coordinator_bin=args.coordinator_bin,
        thread_pool_size=args.thread_pool_size, log_level=args.log_level,
        agent_args=args.agent_arg, pass_coherence=not args.no_coherence_flag)


def guest_fsbench(guest, cmd, args, timeout=None):
    rc, out = guest.run("fsbench " + cmd, timeout=timeout or
                        args.workload_timeout)
    if rc != 0:
        raise vmlib.VmError("fsbench %s exited %d in %s:\n%s" % (
            cmd, rc, guest.name, out))
    return parse_fsbench(out)


# --- 1. read-mostly ------------------------------------------------------

def read_rep(mode, cluster, rep, args, samples, metrics):
    """One repetition of the read-mostly workloads in guest g0."""
    g = cluster.guests[0]
    urls = cluster.backend.metrics_urls
    flags = "--dir=/mnt/t%d --tree=%s --warm-passes=%d --warm-seconds=%d" % (
        rep, args.tree, args.warm_passes, args.warm_seconds)
    cells = []
    for w in report.READ_WORKLOADS:
        before = backends.scrape(urls[0]) if urls else None
        load = loadavg()[0]
        recs = guest_fsbench(g, "%s %s" % (flags, w), args)
        if urls:
            d = backends.delta(before, backends.scrape(urls[0]))
            metrics.append({"mode": mode, "rep": rep, "workload": w,
                            "fuse_ops": backends.fuse_ops(d),
                            "coherence": backends.coherence_counts(d),
                            "wait_metrics": backends.wait_metrics(d)})
        for i, r in enumerate(recs):
            samples.append({"mode": mode, "rep": rep, "workload": r["name"],
                            "pass": i, "ops": r["ops"],
                            "seconds": r["seconds"], "value": r["ops_per_s"],
                            "dropped_caches": r["dropped_caches"],
                            "loadavg_1m": load})
        vals = [r["ops_per_s"] for r in recs]
        secs = sum(r["seconds"] for r in recs)
        cells.append("%s=%s" % (w.replace("tree_", ""), report.stats.fmt(
            sum(r["ops"] for r in recs) / secs if secs > 0 else 0)) + (
                "" if len(vals) < 2 else "(%d passes %s-%s)" % (
                    len(vals), report.stats.fmt(min(vals)),
                    report.stats.fmt(max(vals)))))
    return " ".join(cells)


# --- 2. write-shared -------------------------------------------------------

def write_shared(mode, cluster, args):
    """Both guests change the same files at once; returns the result."""
    urls = cluster.backend.metrics_urls
    before = [backends.scrape(u) for u in urls]
    outs, errors = [None, None], []
    cmd = "--dir=/mnt/w --seconds=%d --shared-files=%d shared_write" % (
        args.write_seconds, args.shared_files)

    def work(i):
        try:
            outs[i] = guest_fsbench(cluster.guests[i], cmd, args,
                                    timeout=args.write_seconds + 300)
        except Exception as e:  # reported below
            errors.append("%s: %s" % (cluster.guests[i].name, e))
    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise vmlib.VmError("; ".join(errors))
    deltas = [backends.delta(b, backends.scrape(u))
              for b, u in zip(before, urls)]
    ops = [backends.fuse_ops(d) for d in deltas]
    setattr_ms = [backends.mean_ms(o, "setattr") for o in ops]
    return {"guests": [{r["name"]: r for r in out} for out in outs],
            "fuse_ops": ops, "setattr_mean_ms": setattr_ms if urls else [],
            "coherence": [backends.coherence_counts(d) for d in deltas],
            "wait_metrics": [backends.wait_metrics(d) for d in deltas]}


# --- 3. staleness -----------------------------------------------------------

def staleness(mode, args):
    backend = new_backend(mode, args)
    records = checker.VmDriver(backend, readers=1, vmlib=vmlib,
                               keep=args.keep).run(args.seed,
                                                   args.staleness_ops)
    rep = checker.check(records, "bounded")
    out = rep.summary()
    out["ops"] = args.staleness_ops
    out["strict_ok"] = not rep.stale and not rep.phantoms
    out["report"] = rep.format()
    return out


# --- the run ---------------------------------------------------------------

def machine_notes(args):
    d, s, f = args.tree_dims
    notes = runinfo.vm_machine_notes(vmlib, args.kernel_dir, REPO,
                                     args.thread_pool_size)
    notes.update({
        "agent_bin": args.agent_bin, "agent_sha256": runinfo.sha256_of(args.agent_bin),
        "coordinator_bin": args.coordinator_bin,
        "agent_args": args.agent_arg,
        "coherence_flag_passed": not args.no_coherence_flag,
        "modes": args.modes, "phases": args.phases,
        "mode_settings": {m: dict(zip(("system", "cache", "coherence"),
                                      backends.MODES[m]))
                          for m in args.modes},
        "sizes": {"tree": args.tree, "files": d * s * f, "reps": args.reps,
                  "warm_passes": args.warm_passes,
                  "warm_seconds": args.warm_seconds,
                  "write_seconds": args.write_seconds,
                  "shared_files": args.shared_files,
                  "staleness_ops": args.staleness_ops, "seed": args.seed},
    })
    return notes


def boot_all(stack, args, prepare, failures):
    """Enters one 2-guest Cluster per mode (one at a time: each boots its
    two guests in parallel). Returns {mode: cluster}."""
    clusters = {}
    for mode in args.modes:
        t0 = time.monotonic()
        try:
            c = vmlib.Cluster(backends.Prepared(new_backend(mode, args),
                                                prepare), 2,
                              kernel_dir=args.kernel_dir, helpers=[FSBENCH_C],
                              keep=args.keep,
                              boot_deadline_s=args.boot_deadline)
            clusters[mode] = stack.enter_context(c)
            log("  %-17s up in %.1f s (%s)" % (mode, time.monotonic() - t0,
                                               c.workdir))
        except Exception as e:  # the other modes still run
            failures.append("%s boot: %s" % (mode, e))
            log("  %-17s FAILED to boot: %s" % (mode, str(e).splitlines()[0]))
    return clusters


def main(argv):
    args = parse_args(argv)
    vmlib.install_signal_handlers()
    vmlib.ensure_kernel(args.kernel_dir)
    meta = machine_notes(args)
    meta["started_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["loadavg_start"] = loadavg()
    t_start = time.monotonic()
    samples, metrics, failures = [], [], []
    write, stale = {}, {}
    if args.no_coherence_flag:
        log("NOTE: --no-coherence-flag: the agents run WITHOUT --coherence; "
            "coherefs-strict and coherefs-bounded are the same setup here")
    with tempfile.TemporaryDirectory(prefix="cohbench.") as tmp:
        prepare = make_prepare(args, build_host_fsbench(tmp))
        if "read" in args.phases or "write" in args.phases:
            log("booting %d modes x 2 guests" % len(args.modes))
            with contextlib.ExitStack() as stack:
                clusters = boot_all(stack, args, prepare, failures)
                meta["boot_done_s"] = time.monotonic() - t_start
                if "read" in args.phases:
                    for rep in range(args.reps):
                        live = [m for m in args.modes if m in clusters]
                        k = rep % max(1, len(live))
                        order = live[k:] + live[:k]
                        log("read-mostly repetition %d/%d (order: %s)" % (
                            rep + 1, args.reps, ", ".join(order)))
                        for mode in order:
                            t0 = time.monotonic()
                            try:
                                cells = read_rep(mode, clusters[mode], rep,
                                                 args, samples, metrics)
                                log("  %-17s %5.1fs %s" % (
                                    mode, time.monotonic() - t0, cells))
                            except (vmlib.VmError, TimeoutError) as e:
                                failures.append("%s read rep %d: %s" % (
                                    mode, rep, e))
                                log("  %-17s FAILED: %s" % (
                                    mode, str(e).splitlines()[0]))
                if "write" in args.phases:
                    log("write-shared: both guests, %d files, %d s" % (
                        args.shared_files, args.write_seconds))
                    for mode in [m for m in args.modes if m in clusters]:
                        try:
                            write[mode] = write_shared(mode, clusters[mode],
                                                       args)
                            g = write[mode]["guests"]
                            log("  %-17s %s ops/s" % (mode, " + ".join(
                                report.stats.fmt(x["shared_write"][
                                    "ops_per_s"]) for x in g)))
                        except (vmlib.VmError, TimeoutError) as e:
                            write[mode] = {"error": str(e)}
                            failures.append("%s write: %s" % (mode, e))
                            log("  %-17s FAILED: %s" % (
                                mode, str(e).splitlines()[0]))
                meta["read_write_done_s"] = time.monotonic() - t_start
        if "staleness" in args.phases:
            log("staleness: checker VmDriver, 1 writer + 1 reader guest, "
                "%d changes" % args.staleness_ops)
            for mode in args.modes:
                t0 = time.monotonic()
                try:
                    stale[mode] = staleness(mode, args)
                    log("  %-17s %.1fs %s" % (
                        mode, time.monotonic() - t0,
                        stale[mode]["report"].splitlines()[0]))
                except Exception as e:  # the next mode still runs
                    stale[mode] = {"error": "%s: %s" % (type(e).__name__, e)}
                    failures.append("%s staleness: %s" % (mode, e))
                    log("  %-17s FAILED: %s" % (mode, str(e).splitlines()[0]))
                    traceback.print_exc()

    meta["loadavg_end"] = loadavg()
    meta["wall_seconds"] = time.monotonic() - t_start
    table_doc = None
    if args.table_json:
        try:
            with open(args.table_json) as f:
                table_doc = json.load(f)
        except (OSError, ValueError) as e:
            failures.append("table json %s: %s" % (args.table_json, e))
    doc = summarize_and_print(args, meta, samples, metrics, write, stale,
                              table_doc, failures)
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(doc, f, indent=1)
    if args.out_csv:
        write_csv(args.out_csv, doc)
    bad = failures or report.staleness_verdict(stale) or not (
        samples or write or stale)
    return 1 if bad else 0


def summarize_and_print(args, meta, samples, metrics, write, stale,
                        table_doc, failures):
    rows = report.summarize_read(samples, args.modes)
    ratios = report.ratio_rows(samples)
    print()
    print("Issue 4 benchmark: coherence modes vs virtiofsd, 2 guests per "
          "mode (TCG: %s)" % meta["accel"])
    print("host: %d cores, load %s at start, %s at end; wall %.0f s "
          "(%.1f min); guests %s, 1 vCPU; thread pool %d; git %s" % (
              meta["nproc"],
              " ".join("%.1f" % x for x in meta["loadavg_start"]),
              " ".join("%.1f" % x for x in meta["loadavg_end"]),
              meta["wall_seconds"], meta["wall_seconds"] / 60,
              meta["guest_mem"], args.thread_pool_size, meta["git"]))
    if args.no_coherence_flag:
        print("NOTE: agents ran WITHOUT --coherence (agent predates it): the "
              "coherefs rows are NOT coherence-mode figures")
    if args.agent_arg:
        print("NOTE: agents ran with %s (not the defaults)" %
              " ".join(args.agent_arg))
    if rows:
        d, s, f = args.tree_dims
        print()
        print("read-mostly, guest g0: %d files (%d x %d x %d), %d "
              "repetitions x (1 cold pass + warm passes for >= %d s, >= %d "
              "passes)" % (d * s * f, d, s, f, args.reps, args.warm_seconds,
                           args.warm_passes))
        print("throughput per repetition (all its passes' ops / their "
              "time), ops/s median [min-max] over repetitions:")
        print(report.format_read(rows, args.modes, "reps"))
        print()
        print("single passes, ops/s median [min-max] over every pass (the "
              "min of a warm row is its slowest pass):")
        print(report.format_read(rows, args.modes, "passes"))
    if ratios:
        print()
        print("ratios of median throughput (paired = same repetition)")
        print(report.format_ratios(ratios))
        met, rated, missed = report.verdict(ratios)
        print("targets: %d of %d met%s" % (met, rated, "" if not missed else
                                           "; missed: " + "; ".join(missed)))
    if metrics:
        print()
        print("FUSE requests at the reader's agent per phase (median over "
              "repetitions; mean ms per request)")
        print(format_fuse_ops(metrics, args.modes))
    if write:
        print()
        print("write-shared: both guests chmod/touch/append the same %d "
              "files for %d s" % (args.shared_files, args.write_seconds))
        print(report.format_write(write, args.modes))
        for mode, r in write.items():
            for i, c in enumerate(r.get("coherence") or []):
                if c:
                    print("  %s agent%d (guest g%d): %s" % (
                        mode, i, i, report.format_coherence(c)))
    if stale:
        print()
        print("staleness (tests/coherence/checker.py VmDriver; seconds a "
              "reader still saw a superseded state)")
        print(report.format_staleness(stale, args.modes))
        bad = report.staleness_verdict(stale)
        if bad:
            print("STRICT VIOLATED: " + ", ".join(bad))
            for m in bad:
                print(stale[m]["report"])
    if table_doc:
        print()
        print("version check: table load vs GETATTR round trip (bench/table, "
              "host)")
        print(report.format_table_bench(table_doc))
    if failures:
        print()
        print("FAILED (%d):" % len(failures))
        for f in failures:
            print("  " + str(f).splitlines()[0])
    return {"meta": meta, "samples": samples, "read_summary": rows,
            "ratios": ratios, "fuse_metrics": metrics, "write": write,
            "staleness": {m: {k: v for k, v in r.items()}
                          for m, r in stale.items()},
            "table": table_doc, "failures": [str(f) for f in failures]}


def format_fuse_ops(metrics, modes):
    """One line per (mode, workload): requests per opcode (median over
    repetitions), mean latency in ms."""
    lines = []
    for m in modes:
        for w in report.READ_WORKLOADS:
            mine = [x["fuse_ops"] for x in metrics
                    if x["mode"] == m and x["workload"] == w]
            if not mine:
                continue
            ops = sorted({op for x in mine for op in x})
            cells = []
            for op in ops:
                counts = [x.get(op, (0, None))[0] for x in mine]
                means = [x[op][1] for x in mine if op in x and
                         x[op][1] is not None]
                cells.append("%s=%d%s" % (
                    op, report.stats.median(counts),
                    "" if not means else "@%.2f" % (
                        report.stats.median(means) * 1e3)))
            coh = [x.get("coherence") or {} for x in metrics
                   if x["mode"] == m and x["workload"] == w]
            if any(coh):
                keys = sorted({k for c in coh for k in c})
                cells.append("| " + report.format_coherence(
                    {k: report.stats.median([c.get(k, 0) for c in coh])
                     for k in keys}))
            lines.append("  %-17s %-18s %s" % (m, w, " ".join(cells) or
                                               "(none)"))
    return "\n".join(lines)


def write_csv(path, doc):
    """Every figure: phase,mode,rep,guest,workload,pass,metric,value."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phase", "mode", "rep", "guest", "workload", "pass",
                    "metric", "value"])
        for s in doc["samples"]:
            w.writerow(["read", s["mode"], s["rep"], "g0", s["workload"],
                        s["pass"], "ops_per_s", s["value"]])
        for mode, r in doc["write"].items():
            for i, g in enumerate(r.get("guests") or []):
                for name, rec in g.items():
                    for metric in ("ops_per_s", "lat_p50_us", "lat_p99_us",
                                   "lat_max_us"):
                        w.writerow(["write", mode, 0, "g%d" % i, name, 0,
                                    metric, rec[metric]])
        for mode, r in doc["staleness"].items():
            if r.get("error"):
                continue
            for metric in ("observations", "stale", "phantoms", "max_s",
                           "p99_s"):
                w.writerow(["staleness", mode, 0, "g1", "checker", 0,
                            metric, r[metric]])
        for name, s in ((doc.get("table") or {}).get("series") or {}).items():
            w.writerow(["table", "host", 0, "-", name, 0, "median_ns_per_op",
                        s["median_ns_per_op"]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
