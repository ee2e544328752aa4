"""Summaries, tables and target verdicts of bench/coherence (pure functions).

Read-mostly samples are one per fsbench pass:
    {"mode": "coherefs-strict", "rep": 0, "workload": "tree_stat_warm",
     "pass": 2, "ops": 10000, "seconds": 0.41, "value": 24390.2}
(value = ops/s, higher is better).

The figure compared is a repetition's THROUGHPUT per workload: the sum of
its passes' ops over the sum of their seconds. Warm passes run for a fixed
time, so a lease that expires in the middle costs a slow pass, and the
throughput shows it where a median over passes would hide it.
"read_mostly_warm" is the throughput of all warm stat and readdir passes
of a repetition together.

summarize_read() gives one row per (workload, mode):
    {"workload", "mode", "reps": spread of the per-repetition throughputs,
     "passes": spread over single passes (None for read_mostly_warm)}
ratio_rows() compares subjects with baselines on the median throughputs
(the targets are checked on these), with the spread of per-repetition
paired ratios (subject_r / baseline_r) beside them. Spreads are
bench/vm/stats.spread dicts.
Python 3 standard library only.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.realpath(__file__))), "vm"))
import stats  # noqa: E402  (bench/vm/stats.py: quantile, spread, fmt)

READ_WORKLOADS = ("tree_stat_cold", "tree_stat_warm", "tree_readdir_cold",
                  "tree_readdir_warm")
AGGREGATE = "read_mostly_warm"
AGGREGATED = ("tree_stat_warm", "tree_readdir_warm")
SUBJECTS = ("coherefs-strict", "coherefs-bounded")
# (baseline, minimum ratio) from issue 4.
TARGETS = (("virtiofsd-always", 0.8), ("virtiofsd-none", 5.0))
TARGET_WORKLOADS = ("tree_stat_warm", "tree_readdir_warm", AGGREGATE)


def throughputs(samples):
    """{(mode, workload, rep): ops/s} over each repetition's passes, with
    AGGREGATE for repetitions that have both AGGREGATED workloads."""
    sums = {}
    for s in samples:
        keys = [(s["mode"], s["workload"], s["rep"])]
        if s["workload"] in AGGREGATED:
            keys.append((s["mode"], AGGREGATE, s["rep"]))
        for k in keys:
            ops, secs, seen = sums.get(k, (0, 0.0, frozenset()))
            sums[k] = (ops + s["ops"], secs + s["seconds"],
                       seen | {s["workload"]})
    return {k: ops / secs for k, (ops, secs, seen) in sums.items()
            if secs > 0 and (k[1] != AGGREGATE or
                             len(seen) == len(AGGREGATED))}


def _reps(thr, mode, workload):
    return {r: v for (m, w, r), v in thr.items()
            if m == mode and w == workload}


def summarize_read(samples, modes):
    """Rows for every (workload, mode) with samples, in workload order then
    the order of modes."""
    thr = throughputs(samples)
    rows = []
    for w in READ_WORKLOADS + (AGGREGATE,):
        for m in modes:
            reps = _reps(thr, m, w)
            if not reps:
                continue
            passes = [s["value"] for s in samples
                      if s["workload"] == w and s["mode"] == m]
            rows.append({"workload": w, "mode": m,
                         "reps": stats.spread(list(reps.values())),
                         "passes": stats.spread(passes) if passes else None})
    return rows


def ratio_rows(samples, subjects=SUBJECTS, targets=TARGETS,
               workloads=TARGET_WORKLOADS):
    """One row per (workload, subject, baseline) where both have samples:
    {"workload", "subject", "baseline", "target", "ratio", "paired",
     "meets"}. ratio = median throughput (subject) / (baseline)."""
    thr = throughputs(samples)
    rows = []
    for w in workloads:
        for subj in subjects:
            ra = _reps(thr, subj, w)
            for base, target in targets:
                rb = _reps(thr, base, w)
                if not ra or not rb:
                    continue
                mb = stats.median(list(rb.values()))
                ratio = (stats.median(list(ra.values())) / mb
                         if mb > 0 else None)
                paired = [ra[r] / rb[r] for r in ra if r in rb and rb[r] > 0]
                rows.append({
                    "workload": w, "subject": subj, "baseline": base,
                    "target": target, "ratio": ratio,
                    "paired": stats.spread(paired) if paired else None,
                    "meets": None if ratio is None else ratio >= target})
    return rows


def _table(header, body, left=1):
    widths = [max(len(r[i]) for r in [header] + body)
              for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] +
                     [line(b) for b in body])


def _cell(sp):
    if sp is None:
        return "-"
    return "%s [%s-%s]" % (stats.fmt(sp["median"]), stats.fmt(sp["min"]),
                           stats.fmt(sp["max"]))


def format_read(rows, modes, spread="reps"):
    """One line per workload, one column per mode: ops/s median [min-max]
    of spread ("reps": per-repetition throughput; "passes": single
    passes); n = the most values in a cell."""
    workloads = [w for w in READ_WORKLOADS + (AGGREGATE,)
                 if any(r["workload"] == w and r[spread] for r in rows)]
    cols = [m for m in modes if any(r["mode"] == m for r in rows)]
    body = []
    for w in workloads:
        cells = [w]
        n = 0
        for m in cols:
            r = next((r for r in rows if r["workload"] == w and
                      r["mode"] == m), None)
            sp = r[spread] if r else None
            cells.append(_cell(sp))
            n = max(n, sp["n"] if sp else 0)
        cells.append(str(n))
        body.append(cells)
    return _table(["ops/s"] + cols + ["n"], body)


def format_ratios(rows):
    body = []
    for r in rows:
        body.append([
            r["workload"], "%s / %s" % (r["subject"], r["baseline"]),
            "-" if r["ratio"] is None else "%.2fx" % r["ratio"],
            "-" if r["paired"] is None else "%.2f [%.2f-%.2f]" % (
                r["paired"]["median"], r["paired"]["min"],
                r["paired"]["max"]),
            ">= %gx" % r["target"],
            {True: "met", False: "MISSED", None: "-"}[r["meets"]]])
    return _table(["workload", "subject / baseline", "ratio",
                   "paired [min-max]", "target", "verdict"], body, left=2)


def verdict(rows):
    """(met, rated, [descriptions of misses])."""
    rated = [r for r in rows if r["meets"] is not None]
    missed = ["%s %s/%s %.2fx < %gx" % (r["workload"], r["subject"],
                                         r["baseline"], r["ratio"],
                                         r["target"])
              for r in rated if not r["meets"]]
    return len(rated) - len(missed), len(rated), missed


def _mode_results(results, modes, body, blank_cells):
    """Yields (mode, result) for the modes that have a result; a failed
    mode gets a FAILED row in `body` instead."""
    for m in modes:
        r = results.get(m)
        if not r:
            continue
        if r.get("error"):
            body.append([m, "FAILED: " + r["error"].splitlines()[0]] +
                        [""] * blank_cells)
            continue
        yield m, r


def format_write(results, modes):
    """results: {mode: {"guests": [{"shared_write": rec, "shared_chmod":
    rec, ...} per guest], "setattr_mean_ms": [per agent or None]}}."""
    body = []
    for m, r in _mode_results(results, modes, body, blank_cells=5):
        g = r["guests"]
        rates = [x["shared_write"]["ops_per_s"] for x in g]
        lat = ["%s/%s/%s" % (stats.fmt(x["shared_write"]["lat_p50_us"] / 1e3),
                             stats.fmt(x["shared_write"]["lat_p99_us"] / 1e3),
                             stats.fmt(x["shared_write"]["lat_max_us"] / 1e3))
               for x in g]
        chmod_p50 = [stats.fmt(x["shared_chmod"]["lat_p50_us"] / 1e3)
                     for x in g]
        setattr_ms = r.get("setattr_mean_ms") or []
        body.append([
            m, " + ".join(stats.fmt(x) for x in rates),
            stats.fmt(sum(rates)), "  ".join(lat), "  ".join(chmod_p50),
            "  ".join("-" if v is None else stats.fmt(v)
                      for v in setattr_ms) or "-",
            str(sum(x["shared_write"]["ops"] for x in g))])
    return _table(["mode", "ops/s g0 + g1", "sum",
                   "latency ms p50/p99/max (g0  g1)", "chmod p50 ms",
                   "agent SETATTR mean ms", "ops"], body)


def format_coherence(c):
    """An agent's coherence counters (backends.coherence_counts), with the
    mean strict wait per waiting change."""
    parts = ["%s=%d" % (k, c[k]) for k in ("leases", "refused", "resolves",
                                            "bumps", "strict_waits")
             if k in c]
    if c.get("strict_waits"):
        parts.append("mean strict wait %.1f ms" % (
            1e3 * c.get("strict_wait_s", 0.0) / c["strict_waits"]))
    return " ".join(parts) or "-"


def format_staleness(results, modes):
    """results: {mode: summary dict of tests/coherence/checker.Report plus
    "strict_ok", "ops"} or {"error": ...}."""
    body = []
    for m, r in _mode_results(results, modes, body, blank_cells=6):
        strict = m.endswith("-strict")
        body.append([
            m, str(r["ops"]), str(r["observations"]), str(r["stale"]),
            str(r["phantoms"]), "%.3f" % r["max_s"], "%.3f" % r["p99_s"],
            ("ok (0 stale)" if r["strict_ok"] else "VIOLATED") if strict
            else "-"])
    return _table(["mode", "writer ops", "observations", "stale", "phantom",
                   "max s", "p99 s", "strict check"], body)


def staleness_verdict(results):
    """Names of strict modes whose check found a stale or phantom read."""
    return [m for m, r in results.items()
            if m.endswith("-strict") and not r.get("error") and
            not r["strict_ok"]]


def format_table_bench(doc):
    """bench/table's JSON: median [min-max] ns per op per series, and how
    many table checks fit in one GETATTR round trip."""
    series = doc.get("series", {})
    body = []
    for name in ("table_load", "table_is_current", "statx_local",
                 "statx_fuse"):
        s = series.get(name)
        if s:
            body.append([name, "%s [%s-%s]" % (
                stats.fmt(s["median_ns_per_op"]),
                stats.fmt(s["min_ns_per_op"]),
                stats.fmt(s["max_ns_per_op"])), str(len(
                    s.get("samples_ns_per_op", []))) or "-"])
    out = _table(["series", "ns/op median [min-max]", "rounds"], body)
    if "table_load" in series and "statx_fuse" in series:
        out += "\nGETATTR round trip (statx_fuse) / table load: %.0fx" % (
            series["statx_fuse"]["median_ns_per_op"] /
            series["table_load"]["median_ns_per_op"])
    return out
