"""Transport security end to end, with real processes on loopback.

scripts/make-test-ca.sh makes a CA with certificates for the coordinator,
agents host-a and host-b and an operator, plus an unrelated second CA. Then:

  positive  a coordinator with mutual TLS; agent host-a (mTLS, host mount,
            admin service) registers and unfences; a file changed on the host
            mount shows a new version at the coordinator AND in the agent's
            table, read with `coherectl resolve` and `status` over mTLS
            (operator certificate, admin service included).
  negative  a client without a certificate gets no HTTP/2 byte from the
            coordinator or the admin service (openssl s_client); a certificate
            from another CA is refused; plaintext coherectl against the TLS
            server fails with a message saying it needs TLS; host-a's
            certificate registering as host-b is PERMISSION_DENIED; a
            registered agent's Bump/Resolve/Subscribe/Ack on a volume it did
            not register for is PERMISSION_DENIED (also with agent_id left
            out, and also under --insecure); no transport flag -> exit 2 with
            one line for each program; --insecure -> a warning line.

  tls_test.py --coordinator-bin=P --agent-bin=P --coherectl=P --probe=P --make-ca=P
Prints `ok`/`FAIL` per check and a final `N passed, N failed`; exit 1 on a
failure. Every process is ended by its PID; the work dir and mount are
cleaned up on every exit path.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
import testlib  # noqa: E402
from testlib import free_port, wait_for  # noqa: E402

RESULTS = testlib.Results()
check = RESULTS.check
PROCS = []


def spawn(argv, log_path):
    log = open(log_path, "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT)
    log.close()
    PROCS.append(p)
    return p


def stop(p):
    if p is not None and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def run(argv, timeout=30, stdin=None):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       input=stdin, timeout=timeout)
    return (p.returncode, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))


class Tls:
    """--tls-* flags for one identity of a CA directory."""

    def __init__(self, ca_dir, name, ca_file=None):
        self.ca = ca_file or os.path.join(ca_dir, "ca.pem")
        self.cert = os.path.join(ca_dir, name + ".pem")
        self.key = os.path.join(ca_dir, name + ".key")

    def flags(self):
        return ["--tls-ca=" + self.ca, "--tls-cert=" + self.cert,
                "--tls-key=" + self.key]


def start_coordinator(a, work, name, transport):
    port_file = os.path.join(work, name + ".port")
    log = os.path.join(work, name + ".log")
    p = spawn([a.coordinator_bin, "--listen=127.0.0.1:0", "--port-file=" + port_file,
               "--data-dir=" + os.path.join(work, name + "-data"),
               "--volumes=default,other", "--metrics-listen="] + transport, log)

    def port():
        if p.poll() is not None:
            raise RuntimeError("%s exited %d: %s" % (name, p.returncode, read(log)))
        text = read(port_file).strip()
        return int(text) if text else 0
    return p, "127.0.0.1:%d" % wait_for(port, 20, name + " port"), log


def no_http2_bytes(target, ca, cert=None, key=None):
    """Speaks TLS to target (optionally with a client certificate), sends the
    HTTP/2 preface and returns the bytes the server answered with."""
    argv = ["openssl", "s_client", "-connect", target, "-CAfile", ca, "-alpn", "h2",
            "-quiet"]
    if cert:
        argv += ["-cert", cert, "-key", key]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        p.stdin.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        p.stdin.flush()
    except BrokenPipeError:
        pass  # the server already hung up
    time.sleep(1.5)  # a server that accepted us has sent SETTINGS by now
    p.kill()
    out = p.stdout.read()
    p.wait(5)
    return out


def test_usage(a, work, ca):
    """No transport flag -> exit 2, one line; --insecure -> a warning."""
    rc, out, err = run([a.coordinator_bin, "--data-dir=" + os.path.join(work, "u-data"),
                        "--listen=127.0.0.1:0", "--metrics-listen="])
    want = ("no transport security: pass --tls-ca, --tls-cert and --tls-key (mutual TLS), "
            "or --insecure for plaintext")
    check("coordinator without transport flags: exit 2, one line",
          (rc, err) == (2, "coherefs-coordinator: %s\n" % want), (rc, err))
    rc, out, err = run([a.coherectl, "status"])
    check("coherectl without transport flags: exit 2, one line",
          (rc, err) == (2, "coherectl: %s\n" % want), (rc, err))
    os.makedirs(os.path.join(work, "u-shared"), exist_ok=True)
    rc, out, err = run([a.agent_bin, "--shared-dir=" + os.path.join(work, "u-shared"),
                        "--socket-path=" + os.path.join(work, "u.sock"),
                        "--coordinator=127.0.0.1:1"])
    check("agent with a coordinator but without transport flags: exit 2, one line",
          (rc, err) == (2, "coherefs-agent: %s\n" % want), (rc, err))
    rc, out, err = run([a.coherectl] + Tls(ca, "operator").flags()[:2] +
                       ["--tls-key=" + os.path.join(ca, "agent-host-a.key"), "status"])
    check("coherectl with a key that does not match its certificate: exit 2",
          rc == 2 and "does not match the certificate" in err, (rc, err))


def test_insecure(a, work):
    """--insecure: plaintext works, with a warning line; agents are still
    limited to their volumes."""
    p, target, log = start_coordinator(a, work, "plain", ["--insecure"])
    try:
        check("coordinator --insecure logs a warning",
              "level=warn" in read(log) and "--insecure: plaintext, unauthenticated gRPC" in
              read(log), read(log)[-800:])
        rc, out, err = run([a.coherectl, "--insecure", "--coordinator=" + target, "status"])
        check("coherectl --insecure against a plaintext coordinator", rc == 0, (rc, err))
        probe = [a.probe, "--coordinator=" + target, "--insecure"]
        code = lambda *args: run(probe + list(args))[1].split("\t")[0]
        check("insecure: register host-x for volume default", code("register", "host-x",
                                                                    "default") == "OK")
        check("insecure: host-x bumps default", code("bump", "default", "host-x") == "OK")
        rc, out, err = run(probe + ["bump", "other", "host-x"])
        check("insecure: host-x bumping volume other is PERMISSION_DENIED",
              out == 'PERMISSION_DENIED\tagent "host-x" is not registered for volume '
                     '"other" (registered for: default)\n', out)
        check("insecure: an anonymous tool may still bump other",
              code("bump", "other") == "OK")
        shared = os.path.join(work, "plain-shared")
        os.makedirs(shared)
        alog = os.path.join(work, "plain-agent.log")
        agent = spawn([a.agent_bin, "--shared-dir=" + shared,
                       "--socket-path=" + os.path.join(work, "plain.sock"),
                       "--coordinator=" + target, "--agent-id=plain-agent", "--insecure"], alog)
        try:
            wait_for(lambda: agent.poll() is None and 'msg="volume unfenced"' in read(alog),
                     30, "the plaintext agent to unfence")
            first = read(alog).splitlines()[0]
            check("agent --insecure: follows the coordinator, warning is its first line",
                  "level=warn" in first and "--insecure: plaintext, unauthenticated gRPC for "
                  "the coordinator link and the admin service" in first, first)
        finally:
            stop(agent)
    finally:
        stop(p)


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--coordinator-bin", "--agent-bin", "--coherectl", "--probe", "--make-ca"):
        ap.add_argument(flag, required=True)
    a = ap.parse_args()
    for k in ("coordinator_bin", "agent_bin", "coherectl", "probe", "make_ca"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    work = tempfile.mkdtemp(prefix="cfs-tls.", dir="/tmp")
    mnt = os.path.join(work, "mnt")
    agents = []
    coordinator = None
    try:
        ca = os.path.join(work, "ca")
        other_ca = os.path.join(work, "other-ca")
        rc, out, err = run(["bash", a.make_ca, ca, "host-a", "host-b"], timeout=60)
        check("make-test-ca.sh makes the CA", rc == 0, err)
        run(["bash", a.make_ca, other_ca, "host-a"], timeout=60)
        rc, out, err = run(["openssl", "verify", "-CAfile", os.path.join(ca, "ca.pem"),
                            os.path.join(ca, "coordinator.pem"),
                            os.path.join(ca, "agent-host-a.pem"),
                            os.path.join(ca, "operator.pem")])
        check("every certificate verifies against the CA", rc == 0, out + err)
        rc, out, err = run(["openssl", "x509", "-in", os.path.join(ca, "agent-host-a.pem"),
                            "-noout", "-subject", "-ext", "subjectAltName,extendedKeyUsage"])
        check("agent certificate: CN = id, client and server use",
              "CN = host-a" in out and "DNS:host-a" in out and "Client Authentication" in out
              and "Server Authentication" in out, out)

        test_usage(a, work, ca)
        test_insecure(a, work)

        health = "127.0.0.1:%d" % free_port()
        coordinator, target, clog = start_coordinator(
            a, work, "coordinator", Tls(ca, "coordinator").flags() + ["--health-listen=" + health])
        check("coordinator serves mutual TLS", "transport=mtls" in read(clog), read(clog))
        probe_plain = [a.probe, "--coordinator=" + health, "--insecure"]
        out = run(probe_plain + ["health", "-"])[1]
        check("--health-listen answers grpc.health.v1 in plaintext", out == "OK\tSERVING\n", out)
        out = run(probe_plain + ["resolve", "default"])[1]
        check("--health-listen serves nothing else", out.startswith("UNIMPLEMENTED"), out)
        shared = os.path.join(work, "shared")
        os.makedirs(shared)
        os.makedirs(mnt)
        alog = os.path.join(work, "agent-a.log")
        agent = spawn([a.agent_bin, "--shared-dir=" + shared, "--host-mount=" + mnt,
                       "--coordinator=" + target, "--agent-id=host-a",
                       "--admin-listen=127.0.0.1:0", "--thread-pool-size=2"] +
                      Tls(ca, "agent-host-a").flags(), alog)
        agents.append(agent)

        def unfenced():
            if agent.poll() is not None:
                raise RuntimeError("agent exited %d: %s" % (agent.returncode, read(alog)))
            text = read(alog)
            if 'msg="volume unfenced"' not in text or 'msg="admin endpoint"' not in text:
                return None
            return text.split('msg="admin endpoint"', 1)[1].split("address=", 1)[1].split()[0]
        admin = wait_for(unfenced, 30, "agent host-a to unfence over mTLS")
        check("agent host-a registered and unfenced over mTLS", True)

        ctl = [a.coherectl, "--coordinator=" + target] + Tls(ca, "operator").flags()
        with open(os.path.join(mnt, "f"), "w") as f:
            f.write("one")
        rc, out, err = run(ctl + ["--json", "resolve", os.path.join(shared, "f"),
                                  "--volume=default", "--agent=" + admin])
        first = json.loads(out) if rc == 0 else None
        check("coherectl resolve over mTLS (coordinator and admin service)",
              first is not None and first["agree"] and len(first["agents"]) == 1,
              (rc, out, err))
        os.chmod(os.path.join(mnt, "f"), 0o600)  # a change through the agent
        second = None
        for _ in range(100):  # the agent's table follows within its stream delay
            rc, out, err = run(ctl + ["--json", "resolve", os.path.join(shared, "f"),
                                      "--volume=default", "--agent=" + admin])
            second = json.loads(out) if rc == 0 else None
            if (second and first and second["version"] > first["version"] and
                    second["agree"]):
                break
            time.sleep(0.1)
        check("a change on the host mount reached the coordinator and the agent's table",
              second and first and second["version"] > first["version"] and second["agree"]
              and second["agents"][0]["version"] == second["version"], (first, second))
        rc, out, err = run(ctl + ["--json", "status", "--agent=" + admin])
        status = json.loads(out) if out.strip() else {}
        check("coherectl status over mTLS lists the agent",
              rc == 0 and "host-a" in out, (rc, out[-600:], err))

        # Refusals at the TLS layer.
        for what, addr in (("coordinator", target), ("admin service", admin)):
            got = no_http2_bytes(addr, os.path.join(ca, "ca.pem"))
            check("%s: a client without a certificate gets no HTTP/2 byte" % what,
                  got == b"", got[:40])
            got = no_http2_bytes(addr, os.path.join(ca, "ca.pem"),
                                 os.path.join(ca, "operator.pem"),
                                 os.path.join(ca, "operator.key"))
            check("%s: the same with the operator certificate gets SETTINGS" % what,
                  len(got) >= 9 and got[3] == 4, got[:40])
        both = os.path.join(work, "both-cas.pem")
        with open(both, "w") as f:
            f.write(read(os.path.join(ca, "ca.pem")) + read(os.path.join(other_ca, "ca.pem")))
        stranger = Tls(other_ca, "operator", ca_file=both).flags()
        rc, out, err = run([a.coherectl, "--coordinator=" + target] + stranger + ["status"])
        check("a certificate from another CA is refused",
              rc == 1 and "did not accept this client certificate" in err, (rc, err))
        rc, out, err = run([a.coherectl, "--coordinator=" + target, "--insecure", "status"])
        check("plaintext coherectl against the TLS coordinator fails clearly",
              rc == 1 and err == ("coherectl: coordinator %s unreachable: the server closed the "
                                  "plaintext connection; it probably requires TLS (--tls-ca, "
                                  "--tls-cert, --tls-key)\n" % target), (rc, err))
        rc, out, err = run([a.coherectl, "--coordinator=" + target] +
                           Tls(other_ca, "operator").flags() + ["status"])
        check("a client trusting another CA rejects the coordinator's certificate",
              rc == 1 and "does not verify against --tls-ca" in err, (rc, err))

        # Identity: host-a's certificate cannot register as host-b.
        probe_a = [a.probe, "--coordinator=" + target] + Tls(ca, "agent-host-a").flags()
        rc, out, err = run(probe_a + ["register", "host-b", "default"])
        check("host-a's certificate registering as host-b is PERMISSION_DENIED",
              out == 'PERMISSION_DENIED\tagent id "host-b" is not the caller\'s certificate '
                     '(CN/DNS names: host-a, host-a, localhost)\n'
              or out.startswith('PERMISSION_DENIED\tagent id "host-b" is not the caller'),
              out + err)
        check("the coordinator logs the refusal",
              'msg="call refused" method=RegisterAgent' in read(clog), read(clog)[-800:])
        cert_a = os.path.join(ca, "agent-host-a.pem")
        rc, out, err = run([a.agent_bin, "--shared-dir=" + shared,
                            "--socket-path=" + os.path.join(work, "b.sock"),
                            "--coordinator=" + target, "--agent-id=host-b"] +
                           Tls(ca, "agent-host-a").flags())
        check("an agent started as host-b with host-a's certificate exits 2 at once",
              (rc, err) == (2, 'coherefs-agent: agent id "host-b" is neither the CN nor a DNS '
                               'name of --tls-cert %s\n' % cert_a), (rc, err))

        # Volumes: host-b registers for default only.
        probe_b = [a.probe, "--coordinator=" + target] + Tls(ca, "agent-host-b").flags()
        out = run(probe_b + ["register", "host-b", "default"])[1]
        check("host-b registers for volume default", out.startswith("OK"), out)
        out = run(probe_b + ["bump", "default", "host-b"])[1]
        check("host-b bumps default", out.startswith("OK"), out)
        denied = ('PERMISSION_DENIED\tagent "host-b" is not registered for volume "other" '
                  '(registered for: default)\n')
        for cmd in (["bump", "other", "host-b"], ["bump", "other"],
                    ["resolve", "other", "host-b"], ["resolve", "other"],
                    ["subscribe", "other", "host-b"], ["ack", "other", "host-b"]):
            out = run(probe_b + cmd)[1]
            check("host-b: %s is PERMISSION_DENIED" % " ".join(cmd), out == denied, out)
        out = run(probe_b + ["subscribe", "default", "host-b"])[1]
        check("host-b may subscribe to default", out.startswith("OK"), out)
        probe_op = [a.probe, "--coordinator=" + target] + Tls(ca, "operator").flags()
        out = run(probe_op + ["bump", "other"])[1]
        check("the operator (no agent) may bump other", out.startswith("OK"), out)
        out = run(probe_op + ["bump", "other", "host-b"])[1]
        check("the operator's certificate cannot act as host-b",
              out.startswith('PERMISSION_DENIED\tagent id "host-b" is not the caller'), out)
    except Exception as e:  # report, then clean up below
        check("test ran", False, repr(e))
    finally:
        for p in agents:
            stop(p)
        stop(coordinator)
        for p in PROCS:
            stop(p)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", mnt], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return RESULTS.finish()


if __name__ == "__main__":
    sys.exit(main())
