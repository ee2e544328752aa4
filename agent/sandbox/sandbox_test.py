#!/usr/bin/env python3
"""The real coherefs-agent confines itself, checked from outside.

Starts coherefs-agent (as root, with a /dev/fuse host mount, while another,
unsandboxed agent has its host mount INSIDE this agent's shared directory)
and reads /proc/PID:
  - every thread: CapEff = CapPrm = CapBnd = the documented set
    (0x880000df: CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID SETGID
    SETUID MKNOD SETFCAP), CapInh = CapAmb = 0, NoNewPrivs 1, Seccomp 2,
    and a mount namespace other than ours;
  - /proc/PID/root holds only dev/null, etc (resolver files), proc (pid
    subset), and the configured dirs: the shared dir and the socket dir
    are there, a sibling directory is not, /usr is not, the root is
    read-only, and no fuse.coherefs mount is inside (the copy of the other
    agent's mount was detached, so serving it can never loop through FUSE);
  - a host mount inside the agent's own shared dir is refused (exit 2);
  - a file-system workout through the host mount succeeds and the agent is
    still alive (no syscall of the passthrough is missing from the filter);
  - coherefs_agent_sandbox_info{mode="namespace",seccomp="kill"} 1;
  - the unmount helper holds only CAP_SYS_ADMIN; SIGTERM -> exit 0, the host
    mount and the socket are gone; after SIGKILL of the agent's process group
    the helper still unmounts;
  - seccomp_probe (the agent's filter, installed from the same library)
    dies with SIGSYS on ptrace, kexec_load, mount, fork, an AF_NETLINK socket
    and a signal to another process, and survives getpid; with
    action errno, ptrace fails with EPERM instead;
  - --sandbox=none keeps the full capability set, no seccomp, our mount
    namespace, and logs a warning; --sandbox=bogus exits 2.
Ends with "N passed, N failed".
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

KEPT = 0x880000DF
CAP_SYS_ADMIN = 1 << 21


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, "" if ok else ": " + str(detail)),
              flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def status_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def is_mountpoint(path):
    return subprocess.run(["mountpoint", "-q", path]).returncode == 0


class Agent:
    def __init__(self, binary, work, extra, own_group=False):
        self.log_path = os.path.join(work, "agent-%d.log" % time.monotonic_ns())
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary] + extra, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=own_group)

    def wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if "coherefs-agent ready" in self.text():
                return True
            time.sleep(0.05)
        return False

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def metrics_address(self):
        m = re.search(r"metrics=(127\.0\.0\.1:\d+)", self.text())
        return m.group(1) if m else None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def worker_of(agent_pid, deadline_s=10):
    """The agent proper: coherefs-agent runs supervised by default, and the
    process started is the supervisor, with the worker its one child
    (agent/supervisor). The sandbox is the worker's."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with open("/proc/%d/task/%d/children" % (agent_pid, agent_pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        workers = []
        for k in kids:
            try:
                if status_fields("/proc/%d/status" % k).get("Name") == "coherefs-agent":
                    workers.append(k)
            except OSError:
                pass
        if workers:
            return workers[0]
        time.sleep(0.05)
    return agent_pid


def helper_pid(agent_pid):
    """The unmount helper: the agent's child named coherefs-umount."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = status_fields("/proc/%s/status" % entry)
        except OSError:
            continue
        if st.get("PPid") == str(agent_pid) and st.get("Name") == "coherefs-umount":
            return int(entry)
    return None


def workout(c, mnt):
    """Every kind of change through the host mount (FUSE -> passthrough)."""
    try:
        d = os.path.join(mnt, "w")
        os.mkdir(d)
        with open(os.path.join(d, "f"), "w") as f:
            f.write("data")
        os.rename(os.path.join(d, "f"), os.path.join(d, "g"))
        os.symlink("g", os.path.join(d, "s"))
        os.link(os.path.join(d, "g"), os.path.join(d, "h"))
        os.chmod(os.path.join(d, "g"), 0o600)
        os.chown(os.path.join(d, "g"), 65534, 65534)
        os.utime(os.path.join(d, "g"), (1, 1))
        os.setxattr(os.path.join(d, "g"), "user.k", b"v")
        xattr = os.getxattr(os.path.join(d, "g"), "user.k")
        os.listxattr(os.path.join(d, "g"))
        os.removexattr(os.path.join(d, "g"), "user.k")
        os.mkfifo(os.path.join(d, "fifo"))
        os.truncate(os.path.join(d, "g"), 2)
        with open(os.path.join(d, "g"), "r+b") as f:
            os.fsync(f.fileno())
            os.posix_fallocate(f.fileno(), 0, 4096)
            content = os.pread(f.fileno(), 2, 0)
        names = sorted(os.listdir(d))
        os.statvfs(d)
        for n in names:
            os.unlink(os.path.join(d, n))
        os.rmdir(d)
        c.check("workout through the host mount", xattr == b"v" and content == b"da" and
                names == ["fifo", "g", "h", "s"], (xattr, content, names))
    except OSError as e:
        c.check("workout through the host mount", False, e)


def main():
    agent_bin, probe_bin = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("needs root (the agent mounts /dev/fuse)")
        print("0 passed, 1 failed")
        return 1
    c = Checker()
    work = tempfile.mkdtemp(prefix="cohsbx.", dir="/tmp")
    shared = os.path.join(work, "shared")
    socks = os.path.join(work, "sock")
    secret = os.path.join(work, "secret")
    mnt = os.path.join(work, "mnt")
    other = os.path.join(work, "other")
    foreign = os.path.join(shared, "foreign")  # another agent's host mount
    for d in (shared, socks, secret, mnt, other, foreign):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(shared, "visible"), "w") as f:
        f.write("v")
    with open(os.path.join(secret, "hidden"), "w") as f:
        f.write("h")
    sock = os.path.join(socks, "vm1.sock")
    args = ["--shared-dir=" + shared, "--socket-path=" + sock, "--host-mount=" + mnt,
            "--metrics-listen=127.0.0.1:0"]
    agents = []
    try:
        f = Agent(agent_bin, work, ["--shared-dir=" + other, "--host-mount=" + foreign,
                                    "--sandbox=none"])
        agents.append(f)
        c.check("foreign agent mounts inside the share", f.wait_ready() and
                is_mountpoint(foreign), f.text())
        try:
            r = subprocess.run([agent_bin, "--shared-dir=" + shared, "--host-mount=" + foreign],
                               capture_output=True, text=True, timeout=20)
            c.check("host mount inside its own shared dir refused", r.returncode == 2 and
                    "serve its own mount" in r.stderr, r.stderr)
        except subprocess.TimeoutExpired:  # run() killed it
            c.check("host mount inside its own shared dir refused", False, "it started")
        a = Agent(agent_bin, work, args)
        agents.append(a)
        if not c.check("sandboxed agent starts", a.wait_ready(), a.text()):
            raise RuntimeError("agent did not start")
        pid = worker_of(a.proc.pid)
        c.check("the agent runs supervised (its worker is a child)", pid != a.proc.pid)
        own_ns = os.readlink("/proc/self/ns/mnt")
        tasks = os.listdir("/proc/%d/task" % pid)
        bad = []
        for t in tasks:
            st = status_fields("/proc/%d/task/%s/status" % (pid, t))
            want = {"CapEff": KEPT, "CapPrm": KEPT, "CapBnd": KEPT, "CapInh": 0, "CapAmb": 0}
            for k, v in want.items():
                if int(st[k], 16) != v:
                    bad.append((t, k, st[k]))
            if st["NoNewPrivs"] != "1" or st["Seccomp"] != "2":
                bad.append((t, "NoNewPrivs/Seccomp", st["NoNewPrivs"], st["Seccomp"]))
            if os.readlink("/proc/%d/task/%s/ns/mnt" % (pid, t)) == own_ns:
                bad.append((t, "mount namespace is ours"))
        c.check("all %d threads: caps 0x%x (eff/prm/bnd), no inh/amb, NoNewPrivs 1, Seccomp 2, "
                "own mount namespace" % (len(tasks), KEPT), len(tasks) > 1 and not bad, bad)

        root = "/proc/%d/root" % pid
        top = sorted(os.listdir(root))
        c.check("root holds only dev, etc, proc and the configured dirs' parents",
                set(top) <= {"dev", "etc", "proc", "tmp"} and {"dev", "proc", "tmp"} <= set(top),
                top)
        c.check("/dev holds only null", os.listdir(root + "/dev") == ["null"],
                os.listdir(root + "/dev"))
        etc = sorted(os.listdir(root + "/etc")) if os.path.isdir(root + "/etc") else []
        c.check("/etc holds only resolver files",
                set(etc) <= {"hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf"},
                etc)
        c.check("shared dir visible", os.path.exists(root + shared + "/visible"))
        c.check("socket dir visible", os.path.exists(root + sock))
        c.check("sibling dir of the share not visible", not os.path.exists(root + secret),
                os.listdir(root + work))
        c.check("work dir shows only the bound dirs",
                sorted(os.listdir(root + work)) == ["shared", "sock"], os.listdir(root + work))
        c.check("the foreign mount's copy is an empty directory inside",
                os.listdir(root + foreign) == [], os.listdir(root + foreign))
        c.check("/usr not visible", not os.path.exists(root + "/usr"))
        c.check("/proc is a pid subset (no /proc/sys)", not os.path.exists(root + "/proc/sys") and
                os.path.exists(root + "/proc/self"))
        try:
            open(root + "/planted", "w").close()
            c.check("sandbox root is read-only", False, "created a file in it")
        except OSError as e:
            c.check("sandbox root is read-only", e.errno == 30, e)
        with open("/proc/%d/mountinfo" % pid) as f:
            info = f.read()
        c.check("no fuse.coherefs mount inside (foreign mount copy detached)",
                "fuse.coherefs" not in info, info)
        c.check("host mount serves on the host", is_mountpoint(mnt) and
                os.path.exists(os.path.join(mnt, "visible")))

        workout(c, mnt)
        c.check("agent alive after the workout", a.proc.poll() is None, a.text()[-2000:])

        addr = a.metrics_address()
        body = urllib.request.urlopen("http://%s/metrics" % addr, timeout=10).read().decode()
        c.check("metrics: sandbox_info namespace/kill",
                'coherefs_agent_sandbox_info{mode="namespace",seccomp="kill"} 1' in body,
                [l for l in body.splitlines() if "sandbox" in l])

        hp = helper_pid(pid)
        if c.check("unmount helper running", hp is not None):
            st = status_fields("/proc/%d/status" % hp)
            c.check("unmount helper keeps only CAP_SYS_ADMIN",
                    int(st["CapEff"], 16) == CAP_SYS_ADMIN and
                    int(st["CapBnd"], 16) == CAP_SYS_ADMIN, (st["CapEff"], st["CapBnd"]))
            fds = os.listdir("/proc/%d/fd" % hp)
            c.check("unmount helper holds only its pipes, stderr and the mount",
                    len(fds) <= 6, fds)
        rc = a.stop()
        c.check("SIGTERM -> exit 0", rc == 0, "rc %s: %s" % (rc, a.text()[-2000:]))
        c.check("host mount gone after stop", not is_mountpoint(mnt))
        c.check("socket removed after stop", not os.path.exists(sock))
        time.sleep(0.2)
        c.check("unmount helper gone after stop",
                hp is None or not os.path.exists("/proc/%d" % hp))

        # SIGKILL to the agent's whole process group (as a test runner's
        # timeout does): nothing in the agent runs, the helper (a session of
        # its own) still unmounts.
        a = Agent(agent_bin, work, args, own_group=True)
        agents.append(a)
        if c.check("agent restarts on the same mount point", a.wait_ready(), a.text()):
            hp = helper_pid(worker_of(a.proc.pid))
            os.killpg(a.proc.pid, signal.SIGKILL)
            a.stop(signal.SIGKILL)
            deadline = time.monotonic() + 10
            while is_mountpoint(mnt) and time.monotonic() < deadline:
                time.sleep(0.05)
            c.check("after SIGKILL of the process group the helper unmounts",
                    not is_mountpoint(mnt))
            time.sleep(0.2)
            c.check("helper exits after SIGKILL of the agent",
                    hp is not None and not os.path.exists("/proc/%d/status" % hp) or
                    (hp is not None and status_fields("/proc/%d/status" % hp)["State"][0] == "Z"))

        # The filter itself, installed from the same library.
        for call in ("ptrace", "kexec_load", "mount", "fork", "socket_netlink", "tgkill_other"):
            r = subprocess.run([probe_bin, call], capture_output=True, text=True, timeout=20)
            c.check("filter kills %s with SIGSYS" % call, r.returncode == -signal.SIGSYS,
                    "rc %s %s%s" % (r.returncode, r.stdout, r.stderr))
        r = subprocess.run([probe_bin, "getpid"], capture_output=True, text=True, timeout=20)
        c.check("filter allows getpid", r.returncode == 0, r.stderr)
        r = subprocess.run([probe_bin, "ptrace", "errno"], capture_output=True,
                           text=True, timeout=20)
        c.check("action errno: ptrace fails with EPERM", r.returncode == 0 and
                "returned -1 (Operation not permitted)" in r.stdout, r.stdout + r.stderr)

        # --sandbox=none: nothing changes.
        a = Agent(agent_bin, work, args + ["--sandbox=none"])
        agents.append(a)
        if c.check("unsandboxed agent starts", a.wait_ready(), a.text()):
            wpid = worker_of(a.proc.pid)
            st = status_fields("/proc/%d/status" % wpid)
            mine = status_fields("/proc/self/status")
            c.check("--sandbox=none keeps full caps, no seccomp, our namespace",
                    st["CapEff"] == mine["CapEff"] and st["CapBnd"] == mine["CapBnd"] and
                    st["Seccomp"] == "0" and
                    os.readlink("/proc/%d/ns/mnt" % wpid) == own_ns,
                    (st["CapEff"], st["Seccomp"]))
            c.check("--sandbox=none logs a warning",
                    "level=warn" in a.text() and "sandbox disabled" in a.text())
            body = urllib.request.urlopen("http://%s/metrics" % a.metrics_address(),
                                          timeout=10).read().decode()
            c.check("metrics: sandbox_info none",
                    'coherefs_agent_sandbox_info{mode="none",seccomp="none"} 1' in body)
            c.check("--sandbox=none: SIGTERM -> exit 0, unmounted",
                    a.stop() == 0 and not is_mountpoint(mnt))
        r = subprocess.run([agent_bin, "--sandbox=bogus"] + args, capture_output=True, text=True,
                           timeout=20)
        c.check("--sandbox=bogus exits 2", r.returncode == 2 and "namespace, none" in r.stderr,
                r.stderr)
    except Exception as e:  # noqa: BLE001 - reported as a failure, cleanup below
        c.check("test ran to the end", False, repr(e))
    finally:
        for a in agents:
            if a.proc.poll() is None:
                a.stop()
        for m in (mnt, foreign):
            for _ in range(50):
                if not is_mountpoint(m):
                    break
                time.sleep(0.1)
            if is_mountpoint(m):
                subprocess.run(["umount", "-l", m])
        shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
