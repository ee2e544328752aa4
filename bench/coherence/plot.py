#!/usr/bin/python3
"""Plots a bench/coherence result.

Usage: plot.py RESULT.json OUT.png

Panels: (1) read-mostly ops/s per workload, one bar per mode (log scale;
bar = median over repetitions of each repetition's throughput, whiskers =
min..max); (2) write-shared ops/s per
guest and mode; (3) staleness max and p99 per mode (seconds; strict must be
0); (4) bench/table's ns per version check, table load vs GETATTR (log),
when the run included it.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"coherefs-strict": "#1b7837", "coherefs-bounded": "#7fbf7b",
          "virtiofsd-always": "#2166ac", "virtiofsd-auto": "#92c5de",
          "virtiofsd-none": "#b2182b"}


def read_panel(ax, doc, modes):
    rows = doc["read_summary"]
    workloads = []
    for r in rows:
        if r["workload"] not in workloads:
            workloads.append(r["workload"])
    width = 0.8 / max(1, len(modes))
    for j, m in enumerate(modes):
        xs, ys, lo, hi = [], [], [], []
        for i, w in enumerate(workloads):
            r = next((r for r in rows if r["workload"] == w and
                      r["mode"] == m), None)
            if not r:
                continue
            p = r["reps"]
            xs.append(i + (j - (len(modes) - 1) / 2) * width)
            ys.append(p["median"])
            lo.append(p["median"] - p["min"])
            hi.append(p["max"] - p["median"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=m,
               color=COLORS.get(m))
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels([w.replace("tree_", "") for w in workloads],
                       rotation=20)
    ax.set_ylabel("ops/s per repetition (guest g0)")
    ax.set_title("read-mostly: %s files" % doc["meta"]["sizes"]["files"])
    ax.legend(fontsize=7)


def write_panel(ax, doc, modes):
    ms = [m for m in modes if doc["write"].get(m, {}).get("guests")]
    for i, m in enumerate(ms):
        g = doc["write"][m]["guests"]
        for k, x in enumerate(g):
            ax.bar(i + (k - 0.5) * 0.4, x["shared_write"]["ops_per_s"], 0.4,
                   color=COLORS.get(m), alpha=1.0 if k == 0 else 0.6,
                   edgecolor="black", linewidth=0.3)
    ax.set_yscale("log")
    ax.set_xticks(range(len(ms)))
    ax.set_xticklabels(ms, rotation=20, fontsize=7)
    ax.set_ylabel("ops/s per guest (left g0, right g1)")
    ax.set_title("write-shared: both guests, same files")


def staleness_panel(ax, doc, modes):
    ms = [m for m in modes if m in doc["staleness"] and
          not doc["staleness"][m].get("error")]
    for i, m in enumerate(ms):
        s = doc["staleness"][m]
        ax.bar(i - 0.2, s["max_s"], 0.4, color=COLORS.get(m),
               edgecolor="black", linewidth=0.3)
        ax.bar(i + 0.2, s["p99_s"], 0.4, color=COLORS.get(m), alpha=0.5,
               edgecolor="black", linewidth=0.3)
        ax.text(i, max(s["max_s"], 0) + 0.02, "%d stale" % s["stale"],
                ha="center", fontsize=7)
    ax.set_xticks(range(len(ms)))
    ax.set_xticklabels(ms, rotation=20, fontsize=7)
    ax.set_ylabel("staleness s (left max, right p99)")
    ax.set_title("staleness (coherence checker, VM)")


def table_panel(ax, doc):
    series = (doc.get("table") or {}).get("series") or {}
    names = [n for n in ("table_load", "table_is_current", "statx_local",
                         "statx_fuse") if n in series]
    if not names:
        ax.axis("off")
        ax.text(0.5, 0.5, "no bench/table figures in this run",
                ha="center")
        return
    ys = [series[n]["median_ns_per_op"] for n in names]
    lo = [y - series[n]["min_ns_per_op"] for y, n in zip(ys, names)]
    hi = [series[n]["max_ns_per_op"] - y for y, n in zip(ys, names)]
    ax.bar(range(len(names)), ys, yerr=[lo, hi], capsize=3,
           color=["#1b7837", "#7fbf7b", "#999999", "#b2182b"][:len(names)])
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, fontsize=7)
    ax.set_ylabel("ns per version check (host)")
    ax.set_title("table load vs GETATTR round trip")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    modes = doc["meta"]["modes"]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    read_panel(axes[0][0], doc, modes)
    write_panel(axes[0][1], doc, modes)
    staleness_panel(axes[1][0], doc, modes)
    table_panel(axes[1][1], doc)
    meta = doc["meta"]
    note = "" if meta.get("coherence_flag_passed", True) else (
        "  [agents WITHOUT --coherence]")
    if meta.get("agent_args"):
        note += "  [agent %s]" % " ".join(meta["agent_args"])
    fig.suptitle("coherefs coherence modes vs virtiofsd, %s, %d cores, "
                 "load %.1f-%.1f, git %s%s" % (
                     meta["started_utc"], meta["nproc"],
                     meta["loadavg_start"][0], meta["loadavg_end"][0],
                     meta["git"], note))
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
