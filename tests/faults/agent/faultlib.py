"""Shared pieces of the agent fault tests (Python 3 standard library only).

  binaries(args)   resolves --agent-bin/--coordinator-bin/--coherectl-bin
                   (flags, then COHEREFS_*_BIN, then the repo's bazel-bin).
  Results          counts named checks and prints `N passed, N failed`.
  ReconnectGuest   a tests/vm/vmlib.Guest whose vhost-user-fs chardev has
                   `reconnect=1`. QEMU 7.2 cannot realize vhost-user-fs-pci
                   on such a chardev from the command line: the reconnecting
                   socket connects asynchronously, realize finds it
                   unconnected and fails ("Failed to set msg fds. /
                   vhost_backend_init failed: Protocol error"). So QEMU
                   starts paused (-S) with a QMP socket, the device is
                   hot-added (device_add) on a PCIe root port once the
                   chardev is connected, and only then does the guest run.
  Qmp              a minimal QMP client (one command at a time).
"""

import json
import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
sys.path.insert(0, os.path.join(REPO, "tests", "coherence"))
import vmlib  # noqa: E402
sys.path.insert(0, os.path.join(REPO, "tests"))
import testlib  # noqa: E402

_DEFAULTS = {
    "agent_bin": ("COHEREFS_AGENT_BIN", "agent/coherefs-agent"),
    "coordinator_bin": ("COHEREFS_COORDINATOR_BIN",
                        "server/coherefs-coordinator"),
    "coherectl_bin": ("COHEREFS_COHERECTL_BIN", "client/coherectl"),
}


def add_binary_args(ap):
    for name in _DEFAULTS:
        ap.add_argument("--" + name.replace("_", "-"))
    ap.add_argument("--agent-arg", action="append", default=[],
                    help="extra coherefs-agent argument (repeatable)")


def binaries(args):
    """Fills unset binary paths from the environment or bazel-bin."""
    for name, (env, rel) in _DEFAULTS.items():
        if getattr(args, name, None):
            continue
        path = os.environ.get(env) or os.path.join(REPO, "bazel-bin", rel)
        setattr(args, name, path)
    return args


def supports_flag(binary, flag):
    """Whether `binary --helpfull` (or --help) lists --flag (e.g. insecure,
    which the daemons and coherectl need once mutual TLS is the default)."""
    import subprocess
    for h in ("--helpfull", "--help"):
        try:
            out = subprocess.run([binary, h], capture_output=True, text=True,
                                 timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if re.search(r"-%s\b" % re.escape(flag), out.stdout + out.stderr):
            return True
    return False


class Results(testlib.Results):
    """testlib.Results with the condition first, as these tests read."""

    def check(self, ok, what, detail=""):
        return super().check(what, ok, detail)


class Qmp:
    def __init__(self, path, deadline_s=10):
        end = time.monotonic() + deadline_s
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise vmlib.VmError("QMP socket %s: no QEMU" % path)
                time.sleep(0.05)
        self.sock.settimeout(30)
        self.f = self.sock.makefile("rw")
        self.f.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **arguments):
        self.f.write(json.dumps({"execute": name, "arguments": arguments}) +
                     "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise vmlib.VmError("QMP connection closed")
            r = json.loads(line)
            if "error" in r:
                raise vmlib.VmError("QMP %s: %s" % (name, r["error"]))
            if "return" in r:
                return r["return"]

    def close(self):
        self.sock.close()


class ReconnectGuest(vmlib.Guest):
    def _argv(self):
        argv = super()._argv()
        i = argv.index("-device")  # the vhost-user-fs-pci device: hot-added
        del argv[i:i + 2]
        plain = "socket,id=vfs,path=" + self.vfs_socket
        argv = [plain + ",reconnect=1" if a == plain else a for a in argv]
        self.qmp_path = os.path.join(self.workdir, self.name + ".qmp")
        return argv + ["-S", "-qmp", "unix:%s,server=on,wait=off" %
                       self.qmp_path,
                       "-device", "pcie-root-port,id=rp1,chassis=1"]

    def start(self):
        super().start()
        self.qmp = Qmp(self.qmp_path)
        end = time.monotonic() + 10
        while True:
            vfs = [c for c in self.qmp.cmd("query-chardev")
                   if c["label"] == "vfs"][0]
            if not vfs["filename"].startswith("disconnected"):
                break
            if time.monotonic() > end:
                raise vmlib.VmError("%s: chardev never connected" % self.name)
            time.sleep(0.05)
        self.qmp.cmd("device_add", driver="vhost-user-fs-pci", chardev="vfs",
                     tag=self.tag, bus="rp1", id="fs0")
        self.qmp.cmd("cont")

    def close(self):
        q = getattr(self, "qmp", None)
        if q is not None:
            q.close()
            self.qmp = None
        super().close()
