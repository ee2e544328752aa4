"""Statistics and the printed table of the in-guest benchmark (bench.py).

A sample is one workload's figure from one guest session:
    {"round": 0, "cache": "none", "system": "coherefs",
     "workload": "stat_warm", "unit": "ops/s", "value": 1234.5, ...}
Every value is a rate (ops/s or MiB/s), so higher is better everywhere and
the ratio subject/baseline reads "times as fast" without inverting anything.

summarize() turns samples into one row per (cache, workload):
    {"cache", "workload", "unit",
     "systems": {name: spread}, where spread = {"n", "median", "min", "max",
                                                "q1", "q3"},
     "ratio": median(subject) / median(baseline),
     "paired": spread of the per-round ratios subject_r / baseline_r,
     "meets_target": ratio >= target}
Python 3 standard library only.
"""


def quantile(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        raise ValueError("quantile of no values")
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def median(xs):
    return quantile(xs, 0.5)


def spread(xs):
    return {"n": len(xs), "median": median(xs), "min": min(xs),
            "max": max(xs), "q1": quantile(xs, 0.25),
            "q3": quantile(xs, 0.75)}


def _ordered_unique(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def summarize(samples, subject, baseline, target=1.0):
    """Rows in the order caches and workloads first appear in samples. A
    row whose subject or baseline has no sample has ratio None."""
    rows = []
    caches = _ordered_unique(s["cache"] for s in samples)
    for cache in caches:
        in_cache = [s for s in samples if s["cache"] == cache]
        for workload in _ordered_unique(s["workload"] for s in in_cache):
            mine = [s for s in in_cache if s["workload"] == workload]
            by_system = {}
            for s in mine:
                by_system.setdefault(s["system"], {})[s["round"]] = s["value"]
            row = {"cache": cache, "workload": workload,
                   "unit": mine[0]["unit"],
                   "systems": {name: spread(list(per_round.values()))
                               for name, per_round in by_system.items()},
                   "ratio": None, "paired": None, "meets_target": None}
            a, b = by_system.get(subject), by_system.get(baseline)
            if a and b:
                mb = median(list(b.values()))
                row["ratio"] = (median(list(a.values())) / mb if mb > 0
                                else None)
                paired = [a[r] / b[r] for r in a if r in b and b[r] > 0]
                row["paired"] = spread(paired) if paired else None
                if row["ratio"] is not None:
                    row["meets_target"] = row["ratio"] >= target
            rows.append(row)
    return rows


def fmt(v):
    """Three significant figures or so, without exponent notation."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def _cell(sp):
    if sp is None:
        return "-"
    return "%s [%s-%s]" % (fmt(sp["median"]), fmt(sp["min"]), fmt(sp["max"]))


def format_table(rows, cache, subject, baseline, subject_label=None,
                 baseline_label=None):
    """The table for one cache mode: median [min-max] per system, the ratio
    of medians, and the per-round paired ratios' median [min-max]."""
    rows = [r for r in rows if r["cache"] == cache]
    header = ["workload", "unit", subject_label or subject,
              baseline_label or baseline, "ratio", "paired ratio [min-max]"]
    body = []
    for r in rows:
        ratio = r["ratio"]
        body.append([
            r["workload"], r["unit"], _cell(r["systems"].get(subject)),
            _cell(r["systems"].get(baseline)),
            "-" if ratio is None else "%.2fx" % ratio,
            "-" if r["paired"] is None else "%.2f [%.2f-%.2f]" % (
                r["paired"]["median"], r["paired"]["min"],
                r["paired"]["max"])])
    widths = [max(len(line[i]) for line in [header] + body)
              for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(header), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def verdict(rows, target=1.0):
    """(rows meeting the target, rows with a ratio, names of those below)."""
    rated = [r for r in rows if r["ratio"] is not None]
    below = ["%s/%s %.2fx" % (r["cache"], r["workload"], r["ratio"])
             for r in rated if r["ratio"] < target]
    return len(rated) - len(below), len(rated), below
