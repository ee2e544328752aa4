#!/usr/bin/python3
"""Plots a bump_bench JSON result: coherefs vs etcd.

Usage: plot.py RESULT.json OUT.png

Three panels over the subscriber counts: durable throughput, delivery
latency p50/p99 (log scale) with the gRPC round-trip and fsync floors, and
the ratio coherefs/etcd. Bars are medians across rounds; whiskers span
min..max.
"""
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

COLORS = {"coherefs": "tab:blue", "etcd": "tab:orange"}
RATIO_COLORS = ["tab:green", "tab:olive", "tab:purple", "tab:red", "tab:brown"]


def summary_index(doc):
    idx = {}
    for row in doc["summary"]:
        idx[(row["metric"], row["subscribers"])] = row
    return idx


def spread(idx, metric, subs, system):
    row = idx.get((metric, subs))
    if not row or system not in row:
        return None
    return row[system]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    idx = summary_index(doc)
    meta = doc["meta"]
    clients = sorted({int(m.group(1)) for (metric, _) in idx
                      for m in [re.fullmatch(r"throughput_c(\d+)_bumps_per_s", metric)] if m})
    tput = [f"throughput_c{c}_bumps_per_s" for c in clients]
    subs_list = sorted({n for (m, n) in idx if m in tput})
    systems = [s for s in ("coherefs", "etcd")
               if any(spread(idx, m, n, s) for m in tput for n in subs_list)]
    labels = [str(n) for n in subs_list]

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))

    ax = axes[0]
    groups = [(m, c, s) for m, c in zip(tput, clients) for s in systems]
    width = 0.8 / max(1, len(groups))
    for k, (metric, c, system) in enumerate(groups):
        xs, meds, lo, hi = [], [], [], []
        for i, n in enumerate(subs_list):
            sp = spread(idx, metric, n, system)
            if sp is None:
                continue
            xs.append(i - 0.4 + (k + 0.5) * width)
            meds.append(sp["median"])
            lo.append(sp["median"] - sp["min"])
            hi.append(sp["max"] - sp["median"])
        if xs:
            ax.bar(xs, meds, width * 0.9, yerr=[lo, hi], capsize=3,
                   color=COLORS.get(system, "gray"),
                   hatch=None if c == clients[0] else "//",
                   label=f"{system}, {c} in flight")
    ax.set_xticks(range(len(subs_list)), labels)
    ax.set_xlabel("subscribers")
    ax.set_ylabel("durable bumps/s (acknowledged)")
    ax.set_title("throughput")
    ax.legend(fontsize=7)

    ax = axes[1]
    for k, system in enumerate(systems):
        for metric, marker, style in (("delivery_p50_us", "o", "-"),
                                      ("delivery_p99_us", "^", "--")):
            xs, meds, lo, hi = [], [], [], []
            for i, n in enumerate(subs_list):
                s = spread(idx, metric, n, system)
                if s is None:
                    continue
                xs.append(i + (k - 0.5) * 0.1)
                meds.append(s["median"])
                lo.append(s["median"] - s["min"])
                hi.append(s["max"] - s["median"])
            if xs:
                ax.errorbar(xs, meds, yerr=[lo, hi], marker=marker, linestyle=style,
                            capsize=3, color=COLORS.get(system, "gray"),
                            label=f"{system} {metric.split('_')[1]}")
    floors = []
    for system in systems:
        s = spread(idx, "ping_p50_us", 0, system)
        if s:
            floors.append((s["median"], f"gRPC health RTT p50 ({system})", ":"))
    for metric, label in (("fsync_append_p50_us", "append+fdatasync p50"),
                          ("fsync_overwrite_p50_us", "overwrite+fdatasync p50")):
        s = spread(idx, metric, 0, "host")
        if s:
            floors.append((s["median"], label, "-."))
    for value, label, style in floors:
        ax.axhline(value, color="gray", linestyle=style, linewidth=1)
        ax.annotate(label, (len(subs_list) - 1, value), fontsize=7, color="dimgray",
                    ha="right", va="bottom")
    ax.axhline(1000, color="red", linestyle=":", linewidth=1)
    ax.annotate("target p99 1 ms @64", (0, 1000), fontsize=7, color="red",
                va="bottom")
    ax.set_yscale("log")
    ax.set_xticks(range(len(subs_list)), labels)
    ax.set_xlabel("subscribers")
    ax.set_ylabel("bump -> delivery latency (us)")
    ax.set_title(f"delivery latency at {meta.get('latency_rate_per_s', '?')} bumps/s")
    ax.legend(fontsize=7)

    ax = axes[2]
    drawn = False
    ratio_metrics = tuple((m, f"throughput, {c} in flight")
                          for m, c in zip(tput, clients)) + (
        ("delivery_p50_us", "delivery p50"),
        ("delivery_p99_us", "delivery p99"))
    width = 0.8 / len(ratio_metrics)
    for k, (metric, label) in enumerate(ratio_metrics):
        xs, ys = [], []
        for i, n in enumerate(subs_list):
            row = idx.get((metric, n))
            r = row.get("ratio_coherefs_over_etcd") if row else None
            if r is not None:
                xs.append(i - 0.4 + (k + 0.5) * width)
                ys.append(r)
        if xs:
            ax.bar(xs, ys, width * 0.9, label=label,
                   color=RATIO_COLORS[k % len(RATIO_COLORS)])
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no ratio: both systems are needed", ha="center",
                transform=ax.transAxes)
    ax.axhline(1, color="black", linewidth=0.8)
    ax.axhline(5, color="red", linestyle=":", linewidth=1)
    ax.annotate("throughput target 5x", (len(subs_list) - 0.6, 5), fontsize=7,
                color="red", va="bottom", ha="right")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(range(len(subs_list)), labels)
    ax.set_xlabel("subscribers")
    ax.set_ylabel("coherefs / etcd (medians)")
    ax.set_title("ratios (throughput: >1 better; latency: <1 better)")
    if drawn:
        ax.legend(fontsize=7, loc="lower left")

    fig.suptitle(f"coherefs coordinator vs etcd — {meta.get('date_utc', '')}, "
                 f"{meta.get('rounds', '?')} rounds, {meta.get('cores', '?')} cores "
                 f"({meta.get('cpu', '')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
