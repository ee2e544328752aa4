"""Proves deploy/prometheus and deploy/grafana against running daemons.

Starts one coherefs-coordinator and two coherefs-agent --host-mount
processes over one temp directory (tests/coherence/checker.py's
HostDriver; each agent also serves one vhost-user socket nobody connects
to, so the per-guest series exist), then Debian's `prometheus` on
127.0.0.1 with deploy/prometheus/prometheus.yml (intervals cut to 1 s,
file_sd targets pointed at the loopback ports) and alerts.yml. A workload
on the mounts (create, chmod, touch, rename, stat through the other mount)
moves the coherence metrics; one DescribeVolume of an unknown volume makes
the coordinator count an RPC error.

Then, through Prometheus's HTTP API:
  * the workload moved the metrics the panels are about (bumps, leases,
    invalidations, FUSE requests, fsyncs all > 0), and every target is up;
  * every Grafana template variable's label_values() query has values, and
    every panel target of every dashboard, with the variables replaced by
    those values (Grafana's multi-value regex form) and $__rate_interval
    by 10s, returns at least one series without error;
  * every alert rule's signal (its expression without the top-level
    threshold comparison, see alerts.yml) returns at least one series, the
    full expression evaluates without error, and Prometheus loaded every
    rule with health "ok" after evaluating it.
Also `promtool check config` (the shipped file and the test's), `promtool
check rules`, and that the dashboard JSON matches generate_dashboards.py.

Every process is ended by its PID; everything listens on 127.0.0.1.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "coherence"))
import checker  # noqa: E402  (tests/coherence/checker.py)

DEPLOY = os.path.join(ROOT, "deploy")
RATE_INTERVAL = "10s"
CMP = re.compile(r"(==|!=|>=|<=|>|<)")
# Every label a panel or alert series may carry: all bounded by
# configuration (agents, volumes, guests, opcodes, RPC methods and codes),
# or fixed (reason: crash | replace).
ALLOWED_LABELS = {"__name__", "instance", "job", "volume", "guest", "op", "method", "code",
                  "stat", "le", "version", "reason"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failures:
    def __init__(self):
        self.items = []
        self.checked = 0

    def check(self, ok, what):
        self.checked += 1
        if not ok:
            self.items.append(what)
            print("FAIL: " + what, file=sys.stderr)


class MetricsHostDriver(checker.HostDriver):
    """HostDriver whose agents also serve /metrics and one guest socket."""

    def __init__(self, agent_bin, coordinator_bin, coordinator_metrics_port):
        super().__init__(agent_bin, "always", coordinator_bin=coordinator_bin,
                         coherence="strict",
                         # Short leases: strict writers wait them out.
                         extra_args=["--lease-max-ms=200", "--lease-margin-ms=20"],
                         coordinator_args=["--metrics-listen=127.0.0.1:%d" %
                                           coordinator_metrics_port])
        self.metrics_ports = {"a": free_port(), "b": free_port()}

    def _agent_argv(self, name, mnt):
        return super()._agent_argv(name, mnt) + [
            "--metrics-listen=127.0.0.1:%d" % self.metrics_ports[name],
            "--socket-path=" + os.path.join(self.work, "vm-%s.sock" % name)]


class Prometheus:
    def __init__(self, work, config_path):
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(work, "prometheus.log")
        argv = ["/usr/bin/prometheus", "--config.file=" + config_path,
                "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--log.level=warn"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path, **params):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 400/422: the body says why
            return json.load(e)

    def wait_ready(self, deadline_s=20):
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited %d: %s" % (self.proc.returncode,
                                                                 self.log_tail()))
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus not ready in %d s" % deadline_s)

    def query(self, expr):
        """Returns (error or None, result list)."""
        r = self.get("/api/v1/query", query=expr)
        if r.get("status") != "success":
            return "%s: %s" % (r.get("errorType"), r.get("error")), []
        return None, r["data"]["result"]

    def wait_for(self, expr, what, deadline_s=20):
        """Polls until `expr` returns a series (bounded)."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            err, res = self.query(expr)
            if err is None and res:
                return res
            time.sleep(0.25)
        raise RuntimeError("timed out waiting for %s (%s)" % (what, expr))

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""


def run(argv, what, failures):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=60)
    failures.check(p.returncode == 0, "%s exited %d:\n%s" % (what, p.returncode, p.stdout))


def static_checks(work, failures):
    run(["/usr/bin/python3", os.path.join(DEPLOY, "grafana", "generate_dashboards.py"),
         "--check", "--out", os.path.join(DEPLOY, "grafana", "dashboards")],
        "generate_dashboards.py --check", failures)
    run(["/usr/bin/promtool", "check", "rules", os.path.join(DEPLOY, "prometheus", "alerts.yml")],
        "promtool check rules", failures)
    # The shipped config with its example targets, as an operator gets it.
    shipped = os.path.join(work, "shipped")
    shutil.copytree(os.path.join(DEPLOY, "prometheus"), shipped)
    run(["/usr/bin/promtool", "check", "config", os.path.join(shipped, "prometheus.yml")],
        "promtool check config (shipped)", failures)


def write_test_config(work, coordinator_port, agent_ports):
    """The shipped prometheus.yml with 1 s intervals and loopback targets."""
    conf_dir = os.path.join(work, "prom")
    os.makedirs(os.path.join(conf_dir, "targets"))
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s",
                            evaluation_interval="1s")
    shutil.copy(os.path.join(DEPLOY, "prometheus", "alerts.yml"), conf_dir)
    targets = {"coordinator.yml": ["127.0.0.1:%d" % coordinator_port],
               "agents.yml": ["127.0.0.1:%d" % p for p in agent_ports]}
    for name, addrs in targets.items():
        with open(os.path.join(conf_dir, "targets", name), "w") as f:
            yaml.safe_dump([{"targets": addrs}], f)
    path = os.path.join(conf_dir, "prometheus.yml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    return path


def workload(mount_a, mount_b, rounds=8):
    """Changes through A, observations through B (and a change the other
    way every few rounds), so leases are granted, slots bumped,
    invalidations delivered and strict writers wait out the other mount's
    leases (at most --lease-max-ms + margin each)."""
    for i in range(rounds):
        name = "obs-%d" % (i % 4)
        pa, pb = os.path.join(mount_a, name), os.path.join(mount_b, name)
        with open(pa, "w") as f:
            f.write("x" * i)
        os.stat(pb)
        os.chmod(pa, 0o600 if i % 2 else 0o644)
        os.stat(pb)
        if i % 4 == 0:
            os.utime(pb, (i, i))
            os.stat(pa)
        os.rename(pa, pa + ".r")
        os.listdir(mount_b)
        os.rename(pa + ".r", pa)


def label_values(prom, query):
    """Values of Grafana's label_values(metric, label) through the API."""
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
    if m is None:
        return None
    r = prom.get("/api/v1/label/%s/values" % m.group(2), **{"match[]": m.group(1)})
    return r.get("data") if r.get("status") == "success" else None


def grafana_escape(value):
    """A value as Grafana puts it in a PromQL regex: each regex special
    character behind a backslash, itself escaped inside the "..." string."""
    return re.sub(r"([\\$^*{}\[\]'+?.()|])", r"\\\\\1", value)


def substitute(expr, variables):
    for name, value in variables.items():
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace(
        "$__interval", RATE_INTERVAL).replace("$__range", "1m")


def check_dashboards(prom, failures):
    dash_dir = os.path.join(DEPLOY, "grafana", "dashboards")
    names = sorted(n for n in os.listdir(dash_dir) if n.endswith(".json"))
    failures.check(len(names) >= 4, "expected >= 4 dashboards, found %s" % names)
    uids, targets = set(), 0
    for name in names:
        with open(os.path.join(dash_dir, name)) as f:
            dash = json.load(f)
        failures.check(dash.get("uid") and dash["uid"] not in uids,
                       "%s: missing or duplicate uid" % name)
        uids.add(dash.get("uid"))
        variables = {}
        for var in dash.get("templating", {}).get("list", []):
            failures.check(var["datasource"]["uid"] == "coherefs-prometheus",
                           "%s: variable %s datasource" % (name, var["name"]))
            values = label_values(prom, var["query"]["query"])
            failures.check(bool(values), "%s: variable %s (%s) has no values" %
                           (name, var["name"], var["query"]["query"]))
            variables[var["name"]] = "(%s)" % "|".join(grafana_escape(v) for v in values or [])
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        failures.check(bool(panels), "%s: no panels" % name)
        for panel in panels:
            failures.check(panel["datasource"]["uid"] == "coherefs-prometheus",
                           "%s/%s: panel datasource" % (name, panel["title"]))
            failures.check(bool(panel.get("targets")),
                           "%s/%s: no targets" % (name, panel["title"]))
            for t in panel.get("targets", []):
                targets += 1
                what = "%s/%s/%s" % (name, panel["title"], t["refId"])
                failures.check(t["datasource"]["uid"] == "coherefs-prometheus",
                               what + ": target datasource")
                expr = substitute(t["expr"], variables)
                failures.check("$" not in expr, what + ": unsubstituted variable in " + expr)
                err, res = prom.query(expr)
                failures.check(err is None, "%s: %s\n  %s" % (what, err, expr))
                failures.check(err is not None or bool(res),
                               "%s: no series\n  %s" % (what, expr))
                extra = {k for r in res for k in r["metric"]} - ALLOWED_LABELS
                failures.check(not extra, "%s: unexpected labels %s" % (what, sorted(extra)))
    print("dashboards: %d files, %d panel targets evaluated" % (len(names), targets))
    return targets


def split_signal(expr):
    """The expression without its top-level `<cmp> <number>`, or None."""
    depth, quote, last = 0, None, None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            m = CMP.match(expr, i)
            if m:
                last = (i, m.end())
                i = m.end()
                continue
        i += 1
    if last is None:
        return None
    threshold = expr[last[1]:].strip()
    if not re.fullmatch(r"(bool\s+)?-?[0-9.e+]+", threshold):
        return None
    return expr[:last[0]].strip()


def controls(prom, failures):
    """The checks below can fail: a misspelt metric gives no series (also
    under sum/rate/histogram_quantile), a bad expression an error, and the
    signal split refuses rules without a numeric threshold."""
    for expr in ["coherefs_agent_no_such_metric",
                 "sum(rate(coherefs_agent_no_such_total[10s]))",
                 "histogram_quantile(0.99, sum by (le) (rate(coherefs_no_such_bucket[10s])))",
                 'coherefs_agent_fenced{volume="no-such-volume"}']:
        err, res = prom.query(expr)
        failures.check(err is None and not res, "control %s: %s %s" % (expr, err, res))
    err, _ = prom.query("sum(rate(coherefs_agent_resyncs_total))")
    failures.check(err is not None, "control: a malformed expression gave no error")
    for expr, want in [("up == 0", "up"),
                       ("a - on (v) group_right b > 1e3", "a - on (v) group_right b"),
                       ('x{l!="a>b"} >= 2', 'x{l!="a>b"}'), ("a > b", None), ("a", None)]:
        failures.check(split_signal(expr) == want, "control split_signal(%r) = %r" %
                       (expr, split_signal(expr)))


def check_alerts(prom, failures):
    with open(os.path.join(DEPLOY, "prometheus", "alerts.yml")) as f:
        groups = yaml.safe_load(f)["groups"]
    rules = [r for g in groups for r in g["rules"]]
    failures.check(len(rules) >= 6, "expected >= 6 alert rules, found %d" % len(rules))
    for rule in rules:
        name = rule.get("alert") or rule.get("record")
        sig = split_signal(rule["expr"])
        failures.check(sig is not None,
                       "%s: expression is not `<signal> <cmp> <number>`: %s" %
                       (name, rule["expr"]))
        err, _ = prom.query(rule["expr"])
        failures.check(err is None, "%s: %s" % (name, err))
        if sig is not None:
            err, res = prom.query(sig)
            failures.check(err is None and bool(res), "%s: signal %s: %s" %
                           (name, sig, err or "no series"))
            extra = {k for r in res for k in r["metric"]} - ALLOWED_LABELS
            failures.check(not extra, "%s: unexpected labels %s" % (name, sorted(extra)))
    # Prometheus itself loaded and evaluated each rule without error.
    loaded = {}
    end = time.monotonic() + 10
    while time.monotonic() < end:
        r = prom.get("/api/v1/rules")
        loaded = {x["name"]: x for g in r["data"]["groups"] for x in g["rules"]}
        if len(loaded) == len(rules) and all(
                x.get("lastEvaluation", "").startswith("2") and
                not x["lastEvaluation"].startswith("0001") for x in loaded.values()):
            break
        time.sleep(0.25)
    for rule in rules:
        x = loaded.get(rule["alert"])
        failures.check(x is not None, "%s: not loaded by prometheus" % rule["alert"])
        if x is not None:
            failures.check(x.get("health") == "ok", "%s: health %s %s" %
                           (rule["alert"], x.get("health"), x.get("lastError")))
    print("alerts: %d rules, signals and expressions evaluated" % len(rules))
    return len(rules)


# What the workload must have moved (instant value > 0): the panels and
# alerts are about these, so a run where they stayed 0 proves little.
MOVED = [
    "sum(coherefs_agent_fuse_requests_total)",
    "sum(coherefs_agent_leases_granted_total)",
    "sum(coherefs_agent_bumped_slots_total)",
    "sum(coherefs_agent_invalidations_applied_total)",
    "sum(coherefs_agent_invalidated_slots_total)",
    "sum(coherefs_agent_lease_length_seconds_count)",
    "sum(coherefs_agent_invalidation_delivery_lag_seconds_count)",
    "sum(coherefs_agent_slots_resolved_total)",
    "sum(coherefs_agent_table_slots_used)",
    "sum(coherefs_coordinator_bumps_total)",
    "sum(coherefs_coordinator_fsync_seconds_count)",
    "sum(coherefs_coordinator_fanout_latency_seconds_count)",
    "sum(coherefs_coordinator_rpc_errors_total)",
    "max(coherefs_coordinator_agents)",
]

# Printed for the log only.
INFORMATIVE = [
    "sum(coherefs_agent_strict_waits_total)",
    "sum(coherefs_agent_strict_wait_seconds_total)",
    "coherefs_coordinator_rpc_errors_total",
    "sum(coherefs_agent_leases_refused_total)",
    "coherefs_agent_fenced",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--describe-bin", required=True)
    args = ap.parse_args()
    # Bazel's timeout sends SIGTERM: unwind so every process is stopped by
    # its PID and the mounts and temp dirs go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failures = Failures()
    work = tempfile.mkdtemp(prefix="cohobs.", dir="/tmp")
    prom = None
    try:
        static_checks(work, failures)
        coord_metrics = free_port()
        with MetricsHostDriver(args.agent_bin, args.coordinator_bin, coord_metrics) as hosts:
            config = write_test_config(work, coord_metrics, hosts.metrics_ports.values())
            run(["/usr/bin/promtool", "check", "config", config], "promtool check config (test)",
                failures)
            prom = Prometheus(work, config)
            prom.wait_ready()
            t0 = time.monotonic()
            prom.wait_for("count(up == 1) == 3", "all three targets up")
            w0 = time.monotonic()
            workload(*hosts.mounts)
            print("workload %.1f s" % (time.monotonic() - w0))
            p = subprocess.run([args.describe_bin, "--coordinator=" + hosts.coordinator.target,
                                "--volume=no-such-volume"], stdout=subprocess.PIPE, text=True,
                               timeout=20)
            failures.check(p.stdout.strip() == "NOT_FOUND",
                           "DescribeVolume(no-such-volume): %r" % p.stdout)
            time.sleep(1.5)  # a scrape after the workload's end
            for expr in MOVED:
                res = prom.wait_for(expr + " > 0", "workload to show in " + expr,
                                    deadline_s=10)
                print("  %s = %s" % (expr, res[0]["value"][1]))
            for expr in INFORMATIVE:
                print("  %s = %s" % (expr, [(r["metric"], r["value"][1])
                                            for r in prom.query(expr)[1]]))
            # Rates over 10 s windows need two samples after the workload.
            time.sleep(2.5)
            err, res = prom.query('up{job=~"coherefs-.*"} == 1')
            failures.check(err is None and len(res) == 3, "targets up: %s %s" % (err, res))
            controls(prom, failures)
            targets = check_dashboards(prom, failures)
            rules = check_alerts(prom, failures)
            print("scrape-to-checks %.1f s; %d panel targets, %d rules, %d checks" % (
                time.monotonic() - t0, targets, rules, failures.checked))
    finally:
        if prom is not None:
            prom.stop()
            if failures.items:
                print("prometheus log:\n" + prom.log_tail(), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if failures.items:
        print("%d of %d checks failed" % (len(failures.items), failures.checked),
              file=sys.stderr)
        return 1
    print("PASS: %d checks" % failures.checked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
