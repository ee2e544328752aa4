#!/usr/bin/python3
"""Writes the coherefs Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are generated so that every panel has the same shape: one
Prometheus datasource by fixed uid, fixed dashboard uids, grid positions
computed here. Edit the tables below and run

    deploy/grafana/generate_dashboards.py            # rewrite the JSON
    deploy/grafana/generate_dashboards.py --check    # exit 1 if stale

tests/observability checks that the committed JSON matches this script and
evaluates every panel query against a real Prometheus.

Template variables: `instance` (agents, by scrape target) and `volume`; both
multi-value with "All" = `.*`, used as `instance=~"$instance"`. No panel
groups by a per-file label (there is none); the widest grouping is
(instance, guest) or (op), both bounded by configuration.
"""

import argparse
import json
import os
import sys

DATASOURCE = {"type": "prometheus", "uid": "coherefs-prometheus"}
RATE = "[$__rate_interval]"
AGENT = 'instance=~"$instance", volume=~"$volume"'
AGENT_I = 'instance=~"$instance"'


def rate(metric, sel=AGENT, by=None):
    inner = "rate(%s{%s}%s)" % (metric, sel, RATE)
    return "sum by (%s) (%s)" % (by, inner) if by else "sum(%s)" % inner


def quantile(q, metric, sel, by):
    return ("histogram_quantile(%s, sum by (%s) (rate(%s_bucket{%s}%s)))" %
            (q, ", ".join(by + ["le"]), metric, sel, RATE))


def ratio(num, den, sel=AGENT, by="instance, volume"):
    return "%s\n/\n%s" % (rate(num, sel, by), rate(den, sel, by))


# A panel: (title, kind, unit, [(legend, expr), ...], description).
def panel(title, kind, unit, targets, description=""):
    return {"title": title, "kind": kind, "unit": unit, "targets": targets,
            "description": description}


def ts(title, unit, targets, description=""):
    return panel(title, "timeseries", unit, targets, description)


def stat(title, unit, targets, description=""):
    return panel(title, "stat", unit, targets, description)


def row(title):
    return {"row": title}


VAR_INSTANCE = ("instance", "Agent", "label_values(coherefs_agent_build_info, instance)")
VAR_VOLUME = ("volume", "Volume", "label_values(coherefs_agent_fenced, volume)")

OVERVIEW = {
    "uid": "coherefs-overview",
    "title": "coherefs / Overview",
    "variables": [],
    "panels": [
        stat("Agents up", "short",
             [("", 'sum(up{job="coherefs-agent"})')],
             "Agent scrape targets answering."),
        stat("Coordinator up", "short",
             [("", 'sum(up{job="coherefs-coordinator"})')]),
        stat("Agents registered", "short",
             [("", "max(coherefs_coordinator_agents)")],
             "Agents holding a coordinator lease."),
        stat("Fenced volumes", "short",
             [("", "sum(coherefs_agent_fenced)")],
             "Agent volumes whose table may be stale (no leases granted)."),
        stat("Coordinator epoch", "none",
             [("", "max(coherefs_coordinator_epoch)")]),
        stat("Volumes", "short", [("", "max(coherefs_coordinator_volumes)")]),
        row("Traffic"),
        ts("FUSE requests by agent", "reqps",
           [("{{instance}}", rate("coherefs_agent_fuse_requests_total",
                                  'job="coherefs-agent"', "instance"))]),
        ts("FUSE error ratio", "percentunit",
           [("{{instance}}", ratio("coherefs_agent_fuse_request_errors_total",
                                   "coherefs_agent_fuse_requests_total",
                                   'job="coherefs-agent"', "instance"))]),
        ts("Coordinator bumps", "ops",
           [("bumps", rate("coherefs_coordinator_bumps_total", "")),
            ("group commits", rate("coherefs_coordinator_group_commits_total", ""))]),
        ts("Invalidation fan-out latency", "s",
           [("p50", quantile(0.5, "coherefs_coordinator_fanout_latency_seconds", "", [])),
            ("p99", quantile(0.99, "coherefs_coordinator_fanout_latency_seconds", "", []))],
           "Commit of a change to its write on an agent's stream."),
        ts("Invalidation delivery lag p99 by agent", "s",
           [("{{instance}}", quantile(0.99, "coherefs_agent_invalidation_delivery_lag_seconds",
                                      'job="coherefs-agent"', ["instance"]))],
           "Commit of a change at the coordinator to its receipt by each agent."),
        row("Coherence"),
        ts("Strict wait time per second", "s",
           [("{{instance}}", rate("coherefs_agent_strict_wait_seconds_total",
                                  'job="coherefs-agent"', "instance"))],
           "Seconds per second changes spent waiting for other guests' leases."),
        ts("Lease length p50", "s",
           [("{{instance}}", quantile(0.5, "coherefs_agent_lease_length_seconds",
                                      'job="coherefs-agent"', ["instance"]))],
           "Typical entry/attr lease granted to guests."),
        ts("Resyncs", "ops",
           [("agents", rate("coherefs_agent_resyncs_total", 'job="coherefs-agent"')),
            ("coordinator", rate("coherefs_coordinator_resyncs_total", ""))]),
        ts("Versions", "short",
           [("{{job}} {{version}}",
             'count by (job, version) ({__name__=~"coherefs_(agent|coordinator)_build_info"})')]),
    ],
}

AGENT_DASH = {
    "uid": "coherefs-agent",
    "title": "coherefs / Agent",
    "variables": [VAR_INSTANCE, VAR_VOLUME],
    "panels": [
        row("FUSE operations"),
        ts("Requests by opcode", "reqps",
           [("{{op}}", rate("coherefs_agent_fuse_requests_total", AGENT_I, "op"))]),
        ts("Errors by opcode", "reqps",
           [("{{op}}", rate("coherefs_agent_fuse_request_errors_total", AGENT_I, "op"))]),
        ts("Latency p99 by opcode", "s",
           [("{{op}}", quantile(0.99, "coherefs_agent_fuse_request_duration_seconds",
                                AGENT_I, ["op"]))]),
        ts("Latency p50 (all opcodes)", "s",
           [("p50", quantile(0.5, "coherefs_agent_fuse_request_duration_seconds",
                             AGENT_I, []))]),
        row("Guests"),
        ts("Requests by guest", "reqps",
           [("{{instance}} {{guest}}",
             rate("coherefs_agent_guest_requests_total", AGENT, "instance, guest"))]),
        ts("Guest bytes", "Bps",
           [("in {{guest}}", rate("coherefs_agent_guest_received_bytes_total", AGENT,
                                  "instance, guest")),
            ("out {{guest}}", rate("coherefs_agent_guest_sent_bytes_total", AGENT,
                                   "instance, guest"))]),
        ts("Guest connections", "short",
           [("{{instance}} {{guest}}",
             'sum by (instance, guest) (coherefs_agent_guest_connections_total{%s})' % AGENT)],
           "vhost-user sessions accepted since the agent started."),
        ts("Agent worker restarts", "short",
           [("{{instance}} {{reason}}",
             'max by (instance, reason) (coherefs_agent_worker_restarts_total{%s})' % AGENT_I)],
           "Times the supervisor restarted the agent worker (reason crash, or replace: an "
           "upgrade by SIGUSR2); guests keep their sessions (README \"Agent restarts\")."),
        ts("Malformed input from guests", "ops",
           [("chains {{guest}}", rate("coherefs_agent_guest_bad_chains_total", AGENT,
                                      "instance, guest")),
            ("messages {{guest}}", rate("coherefs_agent_guest_bad_messages_total", AGENT,
                                        "instance, guest"))]),
        row("Coordinator link"),
        ts("Fenced", "short",
           [("{{instance}} {{volume}}", "max by (instance, volume) (coherefs_agent_fenced{%s})"
             % AGENT)],
           "1 while the volume's table may be stale; no leases are granted then."),
        ts("Stream reconnects and lease lapses", "ops",
           [("reconnects {{instance}}", rate("coherefs_agent_coordinator_reconnects_total",
                                             AGENT, "instance")),
            ("lease lapses {{instance}}", rate("coherefs_agent_coordinator_lease_lapses_total",
                                               AGENT_I, "instance"))]),
        ts("Version table slots used", "short",
           [("{{instance}} {{volume}}",
             "max by (instance, volume) (coherefs_agent_table_slots_used{%s})" % AGENT)]),
        ts("Agent versions", "short",
           [("{{instance}} {{version}}",
             "max by (instance, version) (coherefs_agent_build_info{%s})" % AGENT_I)]),
    ],
}

COHERENCE = {
    "uid": "coherefs-coherence",
    "title": "coherefs / Coherence",
    "variables": [VAR_INSTANCE, VAR_VOLUME],
    "panels": [
        row("Leases"),
        ts("Leases granted and refused", "ops",
           [("granted {{instance}}", rate("coherefs_agent_leases_granted_total", AGENT,
                                          "instance")),
            ("refused {{instance}}", rate("coherefs_agent_leases_refused_total", AGENT,
                                          "instance"))]),
        ts("Mean lease length", "s",
           [("{{instance}} {{volume}}", ratio("coherefs_agent_lease_granted_seconds_total",
                                              "coherefs_agent_leases_granted_total"))]),
        ts("Lease length p50 / p99", "s",
           [("p50 {{instance}} {{volume}}",
             quantile(0.5, "coherefs_agent_lease_length_seconds", AGENT, ["instance", "volume"])),
            ("p99 {{instance}} {{volume}}",
             quantile(0.99, "coherefs_agent_lease_length_seconds", AGENT,
                      ["instance", "volume"]))],
           "Entry/attr leases granted to guests: long for files nobody changes, short "
           "under change (adaptive), capped by the volume's lease max."),
        ts("Live leases", "short",
           [("{{instance}} {{volume}}",
             "sum by (instance, volume) (coherefs_agent_live_leases{%s})" % AGENT)]),
        row("Changes"),
        ts("Strict waits", "ops",
           [("{{instance}}", rate("coherefs_agent_strict_waits_total", AGENT, "instance"))],
           "Changes that waited for other guests' leases to run out."),
        ts("Mean strict wait", "s",
           [("{{instance}} {{volume}}", ratio("coherefs_agent_strict_wait_seconds_total",
                                              "coherefs_agent_strict_waits_total"))]),
        ts("Changes refused while fenced", "ops",
           [("{{instance}}", rate("coherefs_agent_changes_refused_total", AGENT, "instance"))]),
        ts("Bumps sent", "ops",
           [("bumped {{instance}}", rate("coherefs_agent_bumped_slots_total", AGENT,
                                         "instance")),
            ("failed {{instance}}", rate("coherefs_agent_bump_failures_total", AGENT,
                                         "instance"))]),
        ts("Host changes", "ops",
           [("{{instance}}", rate("coherefs_agent_host_changes_total", AGENT, "instance"))],
           "Changes made on the shared directory outside any guest."),
        row("Invalidations"),
        ts("Invalidations received", "ops",
           [("applied {{instance}}", rate("coherefs_agent_invalidations_applied_total",
                                          AGENT, "instance")),
            ("slots {{instance}}", rate("coherefs_agent_invalidated_slots_total", AGENT,
                                        "instance"))]),
        ts("Invalidation delivery lag p50 / p99", "s",
           [("p50 {{instance}} {{volume}}",
             quantile(0.5, "coherefs_agent_invalidation_delivery_lag_seconds", AGENT,
                      ["instance", "volume"])),
            ("p99 {{instance}} {{volume}}",
             quantile(0.99, "coherefs_agent_invalidation_delivery_lag_seconds", AGENT,
                      ["instance", "volume"]))],
           "Coordinator commit of a change to this agent's receipt of its invalidation "
           "(wall clocks: includes their offset across hosts)."),
        ts("Sequence lag behind the furthest agent", "short",
           [("{{instance}} {{volume}}",
             "max by (volume) (coherefs_agent_applied_seq{volume=~\"$volume\"})\n"
             "- on (volume) group_right\n"
             "coherefs_agent_applied_seq{%s}" % AGENT)],
           "Change-log entries this agent has not applied yet that another has."),
        ts("Acknowledgements", "ops",
           [("sent {{instance}}", rate("coherefs_agent_invalidation_acks_total", AGENT,
                                       "instance")),
            ("failed {{instance}}", rate("coherefs_agent_invalidation_ack_failures_total",
                                         AGENT, "instance"))]),
        ts("Resyncs", "ops",
           [("{{instance}}", rate("coherefs_agent_resyncs_total", AGENT, "instance"))]),
        ts("Slot resolves", "ops",
           [("calls {{instance}}", rate("coherefs_agent_slot_resolves_total", AGENT,
                                        "instance")),
            ("keys {{instance}}", rate("coherefs_agent_slots_resolved_total", AGENT,
                                       "instance"))]),
    ],
}

COORD = 'job="coherefs-coordinator"'
COORDINATOR = {
    "uid": "coherefs-coordinator",
    "title": "coherefs / Coordinator",
    "variables": [],
    "panels": [
        stat("Epoch", "none", [("", "max(coherefs_coordinator_epoch{%s})" % COORD)]),
        stat("Agents", "short", [("", "max(coherefs_coordinator_agents{%s})" % COORD)]),
        stat("Volumes", "short", [("", "max(coherefs_coordinator_volumes{%s})" % COORD)]),
        stat("RocksDB size", "bytes",
             [("", "max(coherefs_coordinator_rocksdb_size_bytes{%s})" % COORD)]),
        row("Writes"),
        ts("Bumps and group commits", "ops",
           [("bumps", rate("coherefs_coordinator_bumps_total", COORD)),
            ("commits", rate("coherefs_coordinator_group_commits_total", COORD))]),
        ts("RocksDB fsync latency", "s",
           [("p50", quantile(0.5, "coherefs_coordinator_fsync_seconds", COORD, [])),
            ("p99", quantile(0.99, "coherefs_coordinator_fsync_seconds", COORD, []))]),
        ts("Requests per fsync", "short",
           [("p50", quantile(0.5, "coherefs_coordinator_bump_batch_size", COORD, [])),
            ("mean", "%s / %s" % (rate("coherefs_coordinator_bump_batch_size_sum", COORD),
                                  rate("coherefs_coordinator_bump_batch_size_count", COORD)))]),
        row("Fan-out"),
        ts("Fan-out latency", "s",
           [("p50", quantile(0.5, "coherefs_coordinator_fanout_latency_seconds", COORD, [])),
            ("p99", quantile(0.99, "coherefs_coordinator_fanout_latency_seconds", COORD, []))],
           "Commit of a change to its write on a subscriber's stream."),
        ts("Subscribers", "short",
           [("subscribers", "max(coherefs_coordinator_subscribers{%s})" % COORD)]),
        ts("Subscriber queue depth", "short",
           [("{{stat}}", "max by (stat) (coherefs_coordinator_subscriber_queue_depth{%s})"
             % COORD)]),
        ts("Overflows and resyncs", "ops",
           [("overflows", rate("coherefs_coordinator_subscriber_overflows_total", COORD)),
            ("resyncs", rate("coherefs_coordinator_resyncs_total", COORD))],
           "A subscriber that fell too far behind is cut off and resyncs."),
        row("Agents and RPCs"),
        ts("Agent lease expirations", "ops",
           [("expirations", rate("coherefs_coordinator_agent_expirations_total", COORD))]),
        ts("RPC errors", "ops",
           [("{{method}} {{code}}", rate("coherefs_coordinator_rpc_errors_total", COORD,
                                         "method, code"))]),
        ts("Coordinator version", "short",
           [("{{version}}", "max by (version) (coherefs_coordinator_build_info{%s})" % COORD)]),
    ],
}

DASHBOARDS = [OVERVIEW, AGENT_DASH, COHERENCE, COORDINATOR]
LINKS = [{"title": "coherefs", "type": "dashboards", "tags": ["coherefs"],
          "asDropdown": True, "includeVars": True, "keepTime": True}]


def variable(name, label, query):
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": "var-" + name},
        "definition": query, "refresh": 2, "multi": True, "includeAll": True,
        "allValue": ".*", "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def render_panel(p, pid, x, y):
    if "row" in p:
        return {"id": pid, "type": "row", "title": p["row"], "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}
    w, h = (4, 4) if p["kind"] == "stat" else (12, 8)
    out = {
        "id": pid, "type": p["kind"], "title": p["title"], "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": p["unit"]}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE,
                     "expr": expr, "legendFormat": legend or "__auto", "range": True}
                    for i, (legend, expr) in enumerate(p["targets"])],
    }
    if p["description"]:
        out["description"] = p["description"]
    if p["kind"] == "timeseries":
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                          "tooltip": {"mode": "multi"}}
    return out


def render(d):
    panels, x, y, line_h = [], 0, 0, 0
    for i, p in enumerate(d["panels"], start=1):
        if "row" in p:
            if x:
                x, y = 0, y + line_h
            panels.append(render_panel(p, i, 0, y))
            y, line_h = y + 1, 0
            continue
        w = 4 if p["kind"] == "stat" else 12
        if x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        panels.append(render_panel(p, i, x, y))
        line_h = max(line_h, 4 if p["kind"] == "stat" else 8)
        x += w
    return {
        "uid": d["uid"], "title": d["title"], "tags": ["coherefs"],
        "schemaVersion": 36, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"}, "timezone": "",
        "links": LINKS, "annotations": {"list": []},
        "templating": {"list": [variable(*v) for v in d["variables"]]},
        "panels": panels,
    }


def files():
    return {"%s.json" % d["uid"].replace("coherefs-", ""):
            json.dumps(render(d), indent=2, sort_keys=True) + "\n" for d in DASHBOARDS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "dashboards"))
    args = ap.parse_args()
    stale = []
    for name, text in sorted(files().items()):
        path = os.path.join(args.out, name)
        if args.check:
            try:
                with open(path) as f:
                    if f.read() != text:
                        stale.append(path)
            except OSError:
                stale.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print("stale (run deploy/grafana/generate_dashboards.py): " + " ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
