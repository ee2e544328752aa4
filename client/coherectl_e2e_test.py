"""coherectl end to end: a real coherefs-coordinator and a real coherefs-agent
(--host-mount over a temp dir, --coordinator, --admin-listen) on loopback;
every coherectl command is run as a subprocess and its stdout, stderr and
exit code are checked exactly, errors included (unreachable coordinator and
agent, unknown volume, missing path, a path on the FUSE mount, bad usage).

  coherectl_e2e_test.py --coherectl=P --agent-bin=P --coordinator-bin=P
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

sys.path.insert(0, os.path.join(os.environ.get("TEST_SRCDIR", ""),
                                os.environ.get("TEST_WORKSPACE", ""),
                                "tests", "coherence"))
import coordinator  # noqa: E402

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
        argv = [self.binary, "--coordinator=" + (coordinator_target or self.target)]
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
                ["drain"], ["undrain"],
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
                           a["fenced"], a["guests"]) ==
          (agent_admin, "ctl-agent", crd_target, epoch, False, []), a)
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
    watch = subprocess.Popen([ctl.binary, "--coordinator=" + ctl.target, "--json", "watch",
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
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cohctl.", dir="/tmp")
    shared, mnt = os.path.join(work, "shared"), os.path.join(work, "mnt")
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
                 "--admin-listen=127.0.0.1:0", "--thread-pool-size=2"],
                stdout=log, stderr=subprocess.STDOUT)

        def admin_address():
            if agent.poll() is not None:
                raise RuntimeError("agent exited %d: %s" % (agent.returncode,
                                                           open(log_path).read()[-2000:]))
            for line in open(log_path):
                if 'msg="admin endpoint"' in line:
                    return line.rsplit("address=", 1)[1].strip()
            return None

        agent_admin = wait_for(admin_address, "the agent's admin endpoint", 20)
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
        test_drain(ctl, agent_admin, mnt)
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
