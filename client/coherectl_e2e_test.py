"""coherectl end to end: a real coherefs-coordinator and a real coherefs-agent
(--host-mount over a temp dir, --coordinator, --admin-listen) on loopback;
every coherectl command is run as a subprocess and its stdout, stderr and
exit code are checked exactly, errors included (unreachable coordinator and
agent, unknown volume, missing path, a path on the FUSE mount, bad usage).

The agent also serves one guest socket (vm1.sock), played by fake_guest
(agent/admin/fake_guest.cc: the test vhost-user front end in a process of
its own) for guest state, `agent status` and `guest evict/admit`; and its
metrics endpoint is scraped for the lease-length and delivery-lag
histograms.

  coherectl_e2e_test.py --coherectl=P --agent-bin=P --coordinator-bin=P --fake-guest=P
"""

import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.environ.get("TEST_SRCDIR", ""),
                                os.environ.get("TEST_WORKSPACE", ""),
                                "tests", "coherence"))
sys.path.insert(0, os.path.join(os.environ.get("TEST_SRCDIR", ""),
                                os.environ.get("TEST_WORKSPACE", ""), "tests"))
import coordinator  # noqa: E402
import testlib  # noqa: E402

results = {"passed": 0, "failed": 0}


def check(name, cond, detail=""):
    if cond:
        results["passed"] += 1
    else:
        results["failed"] += 1
        print("FAIL %s %s" % (name, detail), file=sys.stderr)


class Ctl:
    def __init__(self, binary, target):
        self.binary = binary
        self.target = target

    def run(self, *args, coordinator_target=None):
        argv = [self.binary, "--insecure",
                "--coordinator=" + (coordinator_target or self.target)]
        p = subprocess.run(argv + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, text=True)
        return p.returncode, p.stdout, p.stderr

    def json(self, *args):
        rc, out, err = self.run("--json", *args)
        return rc, json.loads(out) if out.strip() else None, err


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, what, timeout_s=10):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def read_line(proc, timeout_s=10):
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return proc.stdout.readline() if ready else ""


def test_usage(ctl):
    rc, out, err = ctl.run()
    check("no args exits 2", rc == 2 and out == "" and "Commands:" in err, (rc, err))
    rc, out, err = ctl.run("bogus")
    check("unknown command", (rc, out, err) == (
        2, "", "coherectl: unknown command 'bogus'\nrun 'coherectl --help' for the commands\n"),
        (rc, out, err))
    rc, out, err = ctl.run("status", "--frobnicate")
    check("unknown flag", (rc, err.splitlines()[0]) == (2, "coherectl: unknown flag --frobnicate"),
          (rc, err))
    rc, out, err = ctl.run("watch")
    check("watch needs --volume", (rc, err) == (
        2, "coherectl: watch: --volume is required\n"
           "usage: coherectl watch --volume=NAME [--count=N] [--seconds=S]\n"), (rc, err))
    rc, out, err = ctl.run("watch", "--volume=default", "--count=0")
    check("count must be positive", (rc, err.splitlines()[0]) == (
        2, "coherectl: --count: a positive integer"), (rc, err))
    rc, out, err = ctl.run("volume", "describe")
    check("describe needs NAME", (rc, err.splitlines()[0]) == (
        2, "coherectl: volume describe: expected NAME"), (rc, err))
    rc, out, err = ctl.run("status", "--volume=x")
    check("status takes no --volume", (rc, err.splitlines()[0]) == (
        2, "coherectl: status takes no --volume"), (rc, err))
    for cmd in (["status"], ["volume", "describe"], ["resolve"], ["watch"], ["invalidate"],
                ["drain"], ["undrain"], ["agent", "status"], ["guest", "evict"],
                ["guest", "admit"],
                ["table", "dump"], ["table", "diff"]):
        rc, out, err = ctl.run(*cmd, "--help")
        check("%s --help" % cmd, rc == 0 and err == "" and
              out.startswith("usage: coherectl " + " ".join(cmd)) and "Exit codes" in out,
              (rc, out, err))
    rc, out, err = ctl.run("table", "diff", "--volume=default")
    check("table diff needs --agent", (rc, err.splitlines()[0]) == (
        2, "coherectl: table diff: at least one --agent"), (rc, err))
    rc, out, err = ctl.run("table")
    check("table needs a subcommand", (rc, err.splitlines()[0]) == (
        2, "coherectl: table: expected a subcommand: dump or diff"), (rc, err))
    rc, out, err = ctl.run("agent", "status")
    check("agent status needs --agent", (rc, err.splitlines()[0]) == (
        2, "coherectl: agent status: at least one --agent"), (rc, err))
    rc, out, err = ctl.run("guest")
    check("guest needs a subcommand", (rc, out, err) == (
        2, "", "coherectl: guest: expected a subcommand: evict or admit\n"
               "usage: coherectl guest evict --agent=HOST:PORT NAME\n"), (rc, out, err))
    rc, out, err = ctl.run("agent")
    check("agent needs a subcommand", (rc, err.splitlines()[0]) == (
        2, "coherectl: agent: expected a subcommand: status"), (rc, err))
    rc, out, err = ctl.run("guest", "evict", "vm1")
    check("guest evict needs one --agent", (rc, err.splitlines()[0]) == (
        2, "coherectl: guest evict: exactly one --agent"), (rc, err))
    rc, out, err = ctl.run("guest", "evict", "--agent=127.0.0.1:1")
    check("guest evict needs NAME", (rc, err) == (
        2, "coherectl: guest evict: expected NAME\n"
           "usage: coherectl guest evict --agent=HOST:PORT NAME\n"), (rc, err))
    rc, out, err = ctl.run("help", "guest", "evict")
    check("help guest evict", rc == 0 and out.startswith(
        "usage: coherectl guest evict --agent=HOST:PORT NAME") and
        "strict writers" in out and "until `guest admit`" in out, (rc, out))
    rc, out, err = ctl.run("help", "resolve")
    check("help resolve", rc == 0 and out.startswith("usage: coherectl resolve PATH"), (rc, out))
    rc, out, err = ctl.run("--help")
    check("--help", rc == 0 and "coherectl watch --volume=NAME" in out and err == "", (rc, out))


def test_unreachable(ctl, agent_admin):
    port = closed_port()
    target = "127.0.0.1:%d" % port
    for cmd in (["status"], ["volume", "describe", "default"],
                ["watch", "--volume=default", "--seconds=1"]):
        rc, out, err = ctl.run(*cmd, coordinator_target=target)
        check("unreachable coordinator %s" % cmd, (rc, out, err) == (
            1, "", "coherectl: coordinator %s unreachable\n" % target), (rc, out, err))
    rc, out, err = ctl.run("--json", "status", coordinator_target=target)
    check("unreachable coordinator --json", (rc, json.loads(out), err) == (
        1, {"error": {"code": "UNAVAILABLE",
                      "message": "coordinator %s unreachable" % target}},
        "coherectl: coordinator %s unreachable\n" % target), (rc, out, err))
    rc, doc, err = ctl.json("status", "--agent=" + target, "--agent=" + agent_admin)
    check("unreachable agent in status", rc == 1 and
          doc["agents"][0] == {"target": target, "error": {
              "code": "UNAVAILABLE", "message": "agent %s unreachable" % target}} and
          doc["agents"][1]["agent_id"] == "ctl-agent" and
          err == "coherectl: agent %s unreachable\n" % target, (rc, doc, err))


def test_status(ctl, agent_admin, crd_target):
    rc, doc, err = ctl.json("status", "--agent=" + agent_admin)
    check("status --json rc", rc == 0 and err == "", (rc, err))
    epoch = doc["coordinator"]["epoch"]
    check("status coordinator", doc["coordinator"]["target"] == crd_target and epoch >= 1, doc)
    vols = doc["volumes"]
    check("status volumes", [v["name"] for v in vols] == ["default"] and
          vols[0]["capacity"] == 1 << 20, vols)
    a = doc["agents"][0]
    check("status agent", (a["target"], a["agent_id"], a["coordinator"], a["epoch"],
                           a["fenced"], [g["name"] for g in a["guests"]]) ==
          (agent_admin, "ctl-agent", crd_target, epoch, False, ["vm1"]), a)
    # The coordinator's own view of the agent (ListAgents).
    regs = doc["coordinator"]["agents"]
    check("status coordinator agents", len(regs) == 1 and regs[0]["agent_id"] == "ctl-agent", regs)
    r = regs[0]
    check("status coordinator agent lease",
          r["live"] is True and r["expired_for_ms"] == 0 and r["lease_ttl_ms"] == 10000 and
          0 < r["lease_remaining_ms"] <= r["lease_ttl_ms"] and
          r["last_keepalive_age_ms"] < r["lease_ttl_ms"] and
          # lease max 5000 + margin 100 + 1000 for the agent's own timer
          r["max_guest_lease_ms"] == 6100, r)
    vs = r["volumes"]
    committed = vols[0]["committed_seq"]
    check("status coordinator agent volume",
          [v["volume"] for v in vs] == ["default"] and vs[0]["streaming"] is True and
          vs[0]["committed_seq"] == committed and vs[0]["delivered_seq"] <= committed and
          vs[0]["acked_seq"] <= vs[0]["delivered_seq"], vs)
    av = a["volumes"][0]
    check("status agent volume", (av["name"], av["coherence"], av["lease_max_ms"],
                                  av["fenced"], av["has_table"], av["table_capacity"],
                                  av["table_epoch"]) ==
          ("default", "strict", 5000, False, True, 1 << 20, epoch), av)
    rc, out, err = ctl.run("status", "--agent=" + agent_admin)
    lines = out.splitlines()
    check("status human", rc == 0 and
          lines[0] == "coordinator %s  epoch %d" % (crd_target, epoch) and
          lines[1].split() == ["VOLUME", "CAPACITY", "SLOTS", "USED", "COMMITTED", "SEQ",
                               "FIRST", "RETAINED", "SEQ"] and
          lines[2].split()[:2] == ["default", "1048576"] and
          "agent %s  id ctl-agent  epoch %d  fenced no" % (agent_admin, epoch) in lines and
          any(l.split()[:5] == ["default", "strict", "5000", "no", "%d/1048576" %
                                av["table_slots_used"]] for l in lines), out)
    head = [i for i, l in enumerate(lines) if l.startswith("AGENT ")]
    check("status human coordinator agents", len(head) == 2 and
          lines[head[0]].split() == ["AGENT", "STATE", "LEASE", "LEFT", "MS", "LEASE", "TTL",
                                     "MS", "EXPIRED", "FOR", "MS", "KEEPALIVE", "AGE", "MS",
                                     "MAX", "GUEST", "LEASE", "MS"] and
          lines[head[0] + 1].split()[:2] == ["ctl-agent", "live"] and
          lines[head[0] + 1].split()[3:5] == ["10000", "-"] and
          lines[head[0] + 1].split()[6] == "6100" and
          lines[head[1]].split() == ["AGENT", "VOLUME", "STREAMING", "COMMITTED", "SEQ",
                                     "DELIVERED", "SEQ", "ACKED", "SEQ"] and
          lines[head[1] + 1].split()[:3] == ["ctl-agent", "default", "yes"], out)
    return epoch


def agent_volume(ctl, agent_admin):
    rc, doc, err = ctl.json("status", "--agent=" + agent_admin)
    check("status for drain rc", rc == 0, (rc, err))
    return doc["agents"][0]["volumes"][0]


def test_drain(ctl, agent_admin, mnt):
    rc, out, err = ctl.run("drain")
    check("drain needs --agent", (rc, err.splitlines()[0]) == (
        2, "coherectl: drain: at least one --agent"), (rc, err))
    rc, doc, err = ctl.json("drain", "--agent=" + agent_admin)
    check("drain --json", (rc, doc, err) == (0, {
        "agents": [{"agent": agent_admin, "volumes": ["default"]}], "draining": True}, ""),
        (rc, doc, err))
    before = agent_volume(ctl, agent_admin)
    check("status shows draining", before["draining"] is True, before)
    # Lookups of fresh names while drained are answered without a lease.
    for i in range(5):
        path = os.path.join(mnt, "drained%d" % i)
        with open(path, "w") as f:
            f.write("x")
        os.stat(path)
    after = agent_volume(ctl, agent_admin)
    check("no lease granted while drained",
          after["leases_granted"] == before["leases_granted"] and
          after["leases_refused"] > before["leases_refused"], (before, after))
    rc, out, err = ctl.run("undrain", "--agent=" + agent_admin, "--volume=default")
    check("undrain human", (rc, out, err) == (
        0, "agent %s: undrained default\n" % agent_admin, ""), (rc, out, err))
    os.stat(os.path.join(mnt, "drained0"))
    os.listdir(mnt)
    again = agent_volume(ctl, agent_admin)
    check("leases again after undrain", again["draining"] is False and
          again["leases_granted"] > after["leases_granted"], again)
    rc, out, err = ctl.run("drain", "--agent=" + agent_admin, "--volume=nope")
    check("drain unknown volume", (rc, out, err) == (
        1, "", "coherectl: unknown volume \"nope\"\n"), (rc, out, err))


def guest_status(ctl, agent_admin):
    rc, doc, err = ctl.json("agent", "status", "--agent=" + agent_admin)
    check("agent status --json rc", rc == 0 and err == "", (rc, err))
    return doc["agents"][0]["guests"][0]


class FakeGuest:
    """fake_guest in the background; its first line says how it went."""

    def __init__(self, binary, sock):
        self.p = subprocess.Popen([binary, sock, "--seconds=20"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.first = read_line(self.p, 10).strip()

    def finish(self):
        rest = self.p.stdout.read().strip()
        return self.p.wait(10), rest

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


QUEUES_IDLE = ",".join(["0:128/0", "1:128/0"] + ["%d:0/stopped" % i for i in range(2, 9)])


def test_guests(ctl, agent_admin, fake_guest, sock):
    g = guest_status(ctl, agent_admin)
    check("idle guest", (g["name"], g["state"], g["connected"], g["evicted"], g["cache"],
                         g["fuse_major"], g["queues"], g["socket_path"]) ==
          ("vm1", "idle", False, False, "always", 0, [], sock), g)
    guest = FakeGuest(fake_guest, sock)
    try:
        check("fake guest ready", guest.first.startswith("ready minor=31 max_write="),
              guest.first)
        max_write = int(guest.first.rsplit("=", 1)[1]) if "max_write=" in guest.first else -1
        g = guest_status(ctl, agent_admin)
        check("connected guest --json",
              (g["state"], g["connected"], g["fuse_major"], g["fuse_minor"], g["max_write"],
               g["connections"], len(g["queues"])) ==
              ("connected", True, 7, 31, max_write, 1, 9) and
              g["queues"][0] == {"index": 0, "size": 128, "started": True, "enabled": True,
                                 "in_flight": 0} and
              g["queues"][8] == {"index": 8, "size": 0, "started": False, "enabled": False,
                                 "in_flight": 0}, g)
        rc, out, err = ctl.run("agent", "status", "--agent=" + agent_admin)
        lines = out.splitlines()
        gi = [i for i, l in enumerate(lines) if l.strip().startswith("GUEST ")]
        check("agent status human", rc == 0 and err == "" and
              lines[0].startswith("agent %s  id ctl-agent  epoch " % agent_admin) and
              len(gi) == 1 and lines[gi[0]].split() == [
                  "GUEST", "VOLUME", "STATE", "CACHE", "FUSE", "MAX", "WRITE", "CONNECTIONS",
                  "REQUESTS", "QUEUES", "(INDEX:SIZE/IN", "FLIGHT)", "SOCKET"] and
              lines[gi[0] + 1].split() == ["vm1", "default", "connected", "always", "7.31",
                                           str(max_write), "1", "1", QUEUES_IDLE, sock],
              (rc, out, err))

        rc, out, err = ctl.run("guest", "evict", "--agent=" + agent_admin, "vm1")
        check("guest evict human", (rc, out, err) == (
            0, "agent %s: evicted guest vm1 (its connection was closed); its socket refuses "
               "connections until `coherectl guest admit`\n" % agent_admin, ""), (rc, out, err))
        rc, rest = guest.finish()
        check("evicted guest's connection closed", (rc, rest) == (0, "closed"), (rc, rest))
    finally:
        guest.kill()
    g = wait_for(lambda: (lambda g: g if not g["connected"] else None)(
        guest_status(ctl, agent_admin)), "the session to end")
    check("evicted guest status", (g["state"], g["evicted"], g["queues"], g["fuse_major"]) ==
          ("evicted", True, [], 0), g)
    refused = FakeGuest(fake_guest, sock)
    refused.kill()
    check("evicted guest refused", refused.first == "refused", refused.first)
    g = guest_status(ctl, agent_admin)
    check("refusal counted", (g["refused_connections"], g["connections"]) == (1, 1), g)
    rc, doc, err = ctl.json("guest", "evict", "--agent=" + agent_admin, "vm1")
    check("guest evict again --json", (rc, doc, err) == (
        0, {"agent": agent_admin, "guest": "vm1", "was_connected": False, "evicted": True}, ""),
        (rc, doc, err))
    rc, out, err = ctl.run("guest", "admit", "--agent=" + agent_admin, "vm1")
    check("guest admit human", (rc, out, err) == (
        0, "agent %s: admitted guest vm1\n" % agent_admin, ""), (rc, out, err))
    rc, doc, err = ctl.json("guest", "admit", "--agent=" + agent_admin, "vm1")
    check("guest admit again --json", (rc, doc, err) == (
        0, {"agent": agent_admin, "guest": "vm1", "was_evicted": False, "evicted": False}, ""),
        (rc, doc, err))
    back = FakeGuest(fake_guest, sock)
    try:
        check("admitted guest connects", back.first.startswith("ready minor=31"), back.first)
        g = guest_status(ctl, agent_admin)
        check("admitted guest status", (g["state"], g["evicted"], g["connections"]) ==
              ("connected", False, 2), g)
    finally:
        back.kill()
    for cmd in ("evict", "admit"):
        rc, out, err = ctl.run("guest", cmd, "--agent=" + agent_admin, "nope")
        check("guest %s unknown guest" % cmd, (rc, out, err) == (
            1, "", 'coherectl: agent %s: unknown guest "nope"\n' % agent_admin), (rc, out, err))
    rc, out, err = ctl.run("--json", "guest", "evict", "--agent=" + agent_admin, "nope")
    check("guest evict unknown guest --json", rc == 1 and json.loads(out) == {
        "error": {"code": "NOT_FOUND",
                  "message": 'agent %s: unknown guest "nope"' % agent_admin}}, out)
    target = "127.0.0.1:%d" % closed_port()
    rc, out, err = ctl.run("guest", "evict", "--agent=" + target, "vm1")
    check("guest evict unreachable agent", (rc, out, err) == (
        1, "", "coherectl: agent %s unreachable\n" % target), (rc, out, err))
    rc, out, err = ctl.run("agent", "status", "--agent=" + target)
    check("agent status unreachable", (rc, out, err) == (
        1, "agent %s  unreachable\n" % target, "coherectl: agent %s unreachable\n" % target),
        (rc, out, err))


def scrape(metrics_address):
    with urllib.request.urlopen("http://%s/metrics" % metrics_address, timeout=5) as r:
        return r.read().decode()


def series(text, name):
    return testlib.parse_metrics(text).get(name)


def test_histograms(metrics_address):
    text = scrape(metrics_address)
    lag = series(text, 'coherefs_agent_invalidation_delivery_lag_seconds_count{volume="default"}')
    lag_inf = series(text, 'coherefs_agent_invalidation_delivery_lag_seconds_bucket'
                           '{volume="default",le="+Inf"}')
    lag_sum = series(text, 'coherefs_agent_invalidation_delivery_lag_seconds_sum'
                           '{volume="default"}')
    # The invalidates (three of one file, then --all) reached the agent over
    # its live stream, each with its commit time; on loopback each lag is
    # well under a second.
    check("delivery lag observed", lag is not None and lag >= 4 and lag_inf == lag and
          0 <= lag_sum < lag, (lag, lag_inf, lag_sum))
    n = series(text, 'coherefs_agent_lease_length_seconds_count{volume="default"}')
    granted = series(text, 'coherefs_agent_leases_granted_total{volume="default"}')
    le5 = series(text, 'coherefs_agent_lease_length_seconds_bucket{volume="default",le="5"}')
    le1ms = series(text, 'coherefs_agent_lease_length_seconds_bucket{volume="default",le="0.001"}')
    # Every lease granted is observed once, none longer than the 5 s lease max.
    check("lease lengths observed", n is not None and n > 0 and n == granted and le5 == n,
          (n, granted, le5, le1ms))


def test_describe(ctl):
    rc, doc, err = ctl.json("volume", "describe", "default")
    check("describe --json", rc == 0 and doc["name"] == "default" and
          doc["capacity"] == 1 << 20 and
          set(doc) == {"name", "capacity", "slots_used", "committed_seq",
                       "first_retained_seq"}, (rc, doc, err))
    rc, out, err = ctl.run("volume", "describe", "default")
    check("describe human", rc == 0 and out.splitlines()[:2] == [
        "volume              default", "capacity            1048576"], out)
    rc, out, err = ctl.run("volume", "describe", "nope")
    check("describe unknown volume", (rc, out, err) == (
        1, "", 'coherectl: unknown volume "nope"\n'), (rc, out, err))
    rc, out, err = ctl.run("--json", "volume", "describe", "nope")
    check("describe unknown volume --json", rc == 1 and json.loads(out) == {
        "error": {"code": "NOT_FOUND", "message": 'unknown volume "nope"'}}, out)


def resolve_agrees(ctl, path, agent_admin):
    rc, doc, err = ctl.json("resolve", path, "--volume=default", "--agent=" + agent_admin)
    return doc if rc == 0 and doc["agree"] else None


def test_resolve(ctl, work, agent_admin):
    shared_f = os.path.join(work, "shared", "f1")
    mnt_f = os.path.join(work, "mnt", "f1")
    doc = wait_for(lambda: resolve_agrees(ctl, shared_f, agent_admin),
                   "the agent's table to agree on f1")
    check("resolve --json", doc["path"] == shared_f and doc["volume"] == "default" and
          doc["version"] >> 40 >= 1 and doc["agents"] == [{
              "target": agent_admin, "version": doc["version"], "fenced": False,
              "state": "agree", "agrees": True}], doc)
    rc, out, err = ctl.run("resolve", shared_f, "--volume=default", "--agent=" + agent_admin)
    lines = out.splitlines()
    check("resolve human", rc == 0 and lines[:3] == [
        "path     " + shared_f, "volume   default", "slot     %d" % doc["slot"]] and
        lines[4].split() == ["AGENT", "VERSION", "FENCED", "STATE"] and
        lines[5].split() == [agent_admin, str(doc["version"]), "no", "agree"], out)
    missing = os.path.join(work, "shared", "missing")
    rc, out, err = ctl.run("resolve", missing, "--volume=default")
    check("resolve missing path", (rc, out, err) == (
        1, "", "coherectl: no such file: %s\n" % missing), (rc, out, err))
    rc, out, err = ctl.run("resolve", mnt_f, "--volume=default")
    check("resolve on the FUSE mount", (rc, out, err) == (
        1, "", "coherectl: %s: on a FUSE mount; give the path in the volume's shared "
               "directory\n" % mnt_f), (rc, out, err))
    rc, out, err = ctl.run("resolve", shared_f, "--volume=nope")
    check("resolve unknown volume", (rc, out, err) == (
        1, "", 'coherectl: unknown volume "nope"\n'), (rc, out, err))
    return doc


def quiesce(ctl):
    """Waits until the volume's committed seq holds still for 0.5 s."""
    last, since = None, time.monotonic()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        _, doc, _ = ctl.json("volume", "describe", "default")
        if doc["committed_seq"] != last:
            last, since = doc["committed_seq"], time.monotonic()
        elif time.monotonic() - since >= 0.5:
            return last
        time.sleep(0.05)
    raise RuntimeError("volume never went quiet")


def test_watch_and_invalidate(ctl, work, agent_admin, resolved):
    shared_f = os.path.join(work, "shared", "f1")
    seq0 = quiesce(ctl)
    watch = subprocess.Popen([ctl.binary, "--insecure", "--coordinator=" + ctl.target, "--json",
                              "watch",
                              "--volume=default", "--count=2", "--seconds=20"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(read_line(watch) or "null")
        check("watch subscribed", first is not None and first["event"] == "subscribed" and
              first["volume"] == "default" and first["committed_seq"] == seq0, first)
        bumps = []
        for _ in range(2):
            rc, doc, err = ctl.json("invalidate", shared_f, "--volume=default")
            check("invalidate --json", rc == 0 and err == "" and doc["path"] == shared_f and
                  doc["slot"] == resolved["slot"] and doc["version"] > resolved["version"],
                  (rc, doc, err))
            bumps.append(doc)
        got = [json.loads(read_line(watch) or "null") for _ in range(2)]
        want = [{"event": "invalidation", "seq": b["seq"], "slot": b["slot"],
                 "version": b["version"]} for b in bumps]
        check("watch prints the invalidations", got == want, (got, want))
        check("watch seqs follow", [b["seq"] for b in bumps] == [seq0 + 1, seq0 + 2], bumps)
        rc = watch.wait(10)
        check("watch exits 0 after --count", rc == 0 and watch.stdout.read() == "" and
              watch.stderr.read() == "", rc)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(5)
    # The agent applies the invalidation: its table agrees again.
    doc = wait_for(lambda: resolve_agrees(ctl, shared_f, agent_admin),
                   "the agent to apply the invalidation")
    check("agent table follows invalidate", doc["version"] == bumps[-1]["version"], doc)

    rc, out, err = ctl.run("invalidate", shared_f, "--volume=default")
    check("invalidate human", rc == 0 and out.startswith(
        "invalidated %s: slot %d version " % (shared_f, resolved["slot"])), (rc, out, err))

    quiesce(ctl)
    t0 = time.monotonic()
    rc, out, err = ctl.run("watch", "--volume=default", "--seconds=1")
    took = time.monotonic() - t0
    lines = out.splitlines()
    check("idle watch ends after --seconds", rc == 0 and err == "" and len(lines) == 2 and
          lines[0].startswith("watching volume default (epoch ") and
          lines[1] == "SEQ  SLOT  VERSION" and 0.9 <= took < 5, (rc, out, err, took))
    rc, out, err = ctl.run("watch", "--volume=nope", "--seconds=1")
    check("watch unknown volume", (rc, out, err) == (
        1, "", 'coherectl: unknown volume "nope"\n'), (rc, out, err))

    _, vol, _ = ctl.json("volume", "describe", "default")
    rc, doc, err = ctl.json("invalidate", "--all", "--volume=default")
    check("invalidate --all", rc == 0 and doc == {
        "volume": "default", "slots": vol["slots_used"],
        "first_seq": vol["committed_seq"] + 1,
        "last_seq": vol["committed_seq"] + vol["slots_used"]}, (rc, doc, vol))
    rc, out, err = ctl.run("invalidate", "--all", "--volume=nope")
    check("invalidate --all unknown volume", (rc, err) == (
        1, 'coherectl: unknown volume "nope"\n'), (rc, err))


def diff_clean(ctl, agent_admin):
    rc, doc, err = ctl.json("table", "diff", "--volume=default", "--agent=" + agent_admin)
    return doc if rc == 0 and doc["agents"][0]["differ"] == [] else None


def test_tables(ctl, agent_admin):
    quiesce(ctl)
    doc = wait_for(lambda: diff_clean(ctl, agent_admin), "a clean table diff")
    _, vol, _ = ctl.json("volume", "describe", "default")
    check("table diff --json", doc == {"volume": "default", "agents": [{
        "target": agent_admin, "fenced": False, "compared": vol["slots_used"],
        "differ": []}]}, (doc, vol))
    rc, out, err = ctl.run("table", "diff", "--volume=default", "--agent=" + agent_admin)
    check("table diff human", (rc, out, err) == (
        0, "agent %s  volume default  %d slots compared, 0 differ\n" % (
            agent_admin, vol["slots_used"]), ""), (rc, out, err))
    rc, crd_dump, err = ctl.json("table", "dump", "--volume=default")
    check("table dump coordinator", rc == 0 and crd_dump["source"] == "coordinator" and
          crd_dump["committed_seq"] == vol["committed_seq"] and
          len(crd_dump["versions"]) == vol["slots_used"] and
          all(v >> 40 == crd_dump["epoch"] for v in crd_dump["versions"]), crd_dump)
    rc, agent_dump, err = ctl.json("table", "dump", "--volume=default",
                                   "--agent=" + agent_admin)
    # After `invalidate --all` every slot was bumped and announced: the
    # agent's table equals the coordinator's, slot for slot.
    check("table dump agent equals coordinator", rc == 0 and
          agent_dump["source"] == "agent " + agent_admin and
          agent_dump["versions"] == crd_dump["versions"] and
          agent_dump["epoch"] == crd_dump["epoch"] and
          agent_dump["committed_seq"] == crd_dump["committed_seq"] and
          agent_dump["fenced"] is False, (agent_dump, crd_dump))
    rc, out, err = ctl.run("table", "dump", "--volume=default")
    lines = out.splitlines()
    check("table dump human", rc == 0 and lines[0] == (
        "coordinator  volume default  epoch %d  committed seq %d" % (
            crd_dump["epoch"], crd_dump["committed_seq"])) and
        lines[1].split() == ["SLOT", "VERSION"] and
        [l.split() for l in lines[2:]] == [[str(i), str(v)] for i, v in
                                           enumerate(crd_dump["versions"])], out)
    for argv in (["table", "dump", "--volume=nope"],
                 ["table", "dump", "--volume=nope", "--agent=" + agent_admin],
                 ["table", "diff", "--volume=nope", "--agent=" + agent_admin]):
        rc, out, err = ctl.run(*argv)
        check("%s unknown volume" % argv, (rc, out, err) == (
            1, "", 'coherectl: unknown volume "nope"\n'), (rc, out, err))
    target = "127.0.0.1:%d" % closed_port()
    rc, out, err = ctl.run("table", "diff", "--volume=default", "--agent=" + target)
    check("table diff unreachable agent", (rc, out, err) == (
        1, "agent %s  agent %s unreachable\n" % (target, target),
        "coherectl: agent %s unreachable\n" % target), (rc, out, err))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coherectl", required=True)
    ap.add_argument("--agent-bin", required=True)
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--fake-guest", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cohctl.", dir="/tmp")
    shared, mnt = os.path.join(work, "shared"), os.path.join(work, "mnt")
    sock = os.path.join(work, "vm1.sock")
    os.mkdir(shared)
    os.mkdir(mnt)
    crd = coordinator.Coordinator(os.path.abspath(a.coordinator_bin), work)
    agent = None
    try:
        crd.start()
        log_path = os.path.join(work, "agent.log")
        with open(log_path, "w") as log:
            agent = subprocess.Popen(
                [os.path.abspath(a.agent_bin), "--shared-dir=" + shared, "--host-mount=" + mnt,
                 "--coordinator=" + crd.target, "--agent-id=ctl-agent",
                 "--admin-listen=127.0.0.1:0", "--thread-pool-size=2", "--insecure",
                 "--socket-path=" + sock, "--metrics-listen=127.0.0.1:0"],
                stdout=log, stderr=subprocess.STDOUT)

        def logged_address(what):
            if agent.poll() is not None:
                raise RuntimeError("agent exited %d: %s" % (agent.returncode,
                                                           open(log_path).read()[-2000:]))
            for line in open(log_path):
                if 'msg="%s"' % what in line:
                    return line.rsplit("address=", 1)[1].strip()
            return None

        agent_admin = wait_for(lambda: logged_address("admin endpoint"),
                               "the agent's admin endpoint", 20)
        metrics_address = wait_for(lambda: logged_address("metrics endpoint"),
                                   "the agent's metrics endpoint", 20)
        wait_for(lambda: os.path.ismount(mnt), "the host mount")
        ctl = Ctl(os.path.abspath(a.coherectl), crd.target)
        wait_for(lambda: ctl.json("status", "--agent=" + agent_admin)[1]["agents"][0][
            "fenced"] is False, "the agent to unfence")
        with open(os.path.join(mnt, "f1"), "w") as f:
            f.write("one\n")
        os.stat(os.path.join(mnt, "f1"))

        test_usage(ctl)
        test_status(ctl, agent_admin, crd.target)
        test_describe(ctl)
        resolved = test_resolve(ctl, work, agent_admin)
        test_watch_and_invalidate(ctl, work, agent_admin, resolved)
        test_tables(ctl, agent_admin)
        test_histograms(metrics_address)
        test_drain(ctl, agent_admin, mnt)
        test_guests(ctl, agent_admin, os.path.abspath(a.fake_guest), sock)
        test_unreachable(ctl, agent_admin)
    finally:
        coordinator.stop_process(agent)
        if os.path.ismount(mnt):
            subprocess.call(["umount", "-l", mnt])
        crd.stop()
        if results["failed"]:
            print("kept %s (logs)" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
