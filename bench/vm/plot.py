#!/usr/bin/python3
"""Plots a bench/vm result: one panel per cache mode, one bar per workload.

Usage: plot.py RESULT.json OUT.png

Each bar is the ratio subject/baseline of the medians over rounds (log
scale, > 1 = the subject is faster); the whiskers span the per-round paired
ratios' min..max, so a whisker that crosses 1 means the rounds disagree.
The dot is the median of the paired ratios. The text beside each bar gives
both medians with their unit.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import stats  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    subject, baseline = doc["subject"], doc["baseline"]
    meta = doc["meta"]
    caches = [c for c in meta["caches"]
              if any(r["cache"] == c for r in doc["summary"])]
    if not caches:
        sys.exit("plot.py: no rows in %s" % sys.argv[1])
    rows_by_cache = {c: [r for r in doc["summary"] if r["cache"] == c
                         and r["ratio"] is not None] for c in caches}
    n = max(len(v) for v in rows_by_cache.values())
    fig, axes = plt.subplots(1, len(caches), figsize=(7 * len(caches),
                                                      0.45 * n + 2.2),
                             squeeze=False)
    for ax, cache in zip(axes[0], caches):
        rows = rows_by_cache[cache][::-1]  # first workload on top
        ys = range(len(rows))
        ratios = [r["ratio"] for r in rows]
        lo = [r["ratio"] - min(r["ratio"], r["paired"]["min"]) for r in rows]
        hi = [max(r["ratio"], r["paired"]["max"]) - r["ratio"] for r in rows]
        colors = ["tab:green" if x >= 1 else "tab:red" for x in ratios]
        ax.barh(list(ys), ratios, xerr=[lo, hi], color=colors, alpha=0.75,
                capsize=3)
        ax.plot([r["paired"]["median"] for r in rows], list(ys), "k.",
                label="paired ratio, median")
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ticks = matplotlib.ticker.FuncFormatter(lambda v, _: "%gx" % v)
        ax.xaxis.set_major_formatter(ticks)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yticks(list(ys))
        ax.set_yticklabels([r["workload"] for r in rows])
        for y, r in zip(ys, rows):
            s, b = r["systems"][subject], r["systems"][baseline]
            ax.text(1.02, y, "%.2fx  %s vs %s %s" % (
                r["ratio"], stats.fmt(s["median"]), stats.fmt(b["median"]),
                r["unit"]), transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)
        ax.set_title("cache=%s" % cache)
        ax.legend(loc="lower left", fontsize=7)
        ax.set_xlabel("%s / %s (median over %d rounds; whiskers: paired "
                      "min-max)" % (subject, baseline, meta["rounds"]),
                      fontsize=8)
    fig.suptitle("In-guest virtio-fs benchmark, %s vs %s — %s, %s, %d cores, "
                 "load %.1f-%.1f, %s" % (
                     subject, baseline, meta["accel"], meta["guest_mem"],
                     meta["nproc"], meta["loadavg_start"][0],
                     meta["loadavg_end"][0], meta["started_utc"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
