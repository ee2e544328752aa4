"""Boots QEMU guests that mount a virtio-fs share, and runs commands in them.

The pieces, each a context manager that cleans up on every exit path:

  Backend   the vhost-user-fs server(s) behind the guests' sockets: the C
            virtiofsd (one process per guest: it serves a single guest) or
            coherefs-agent (one process for every guest, or one per guest).
  Guest     one QEMU process booting tests/vm/.cache/vmlinux with the
            initramfs of build_initramfs.py; guest.run("cmd") -> (rc, out)
            over the second serial port (protocol in guest_init.sh).
  Cluster   a temp dir, a shared dir, a backend and N guests booted in
            parallel.

Every process started here is recorded and, if still alive at interpreter
exit (also after SIGTERM, e.g. a Bazel timeout), killed by its PID; nothing
else is ever signalled. Python 3 standard library only.

Accelerator: KVM when /dev/kvm is usable for a stock kernel, else TCG with
-cpu max. On the development machines /dev/kvm is either absent or the
paravirtual kvm_pvm that cannot run a stock kernel (see
/work/shared/notes/qemu-e2e.md), so TCG is what runs; a KVM boot that fails
falls back to TCG once. COHEREFS_VM_ACCEL=kvm|tcg forces a choice.
"""

import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# realpath: under `bazel test` this file is a runfiles symlink; the kernel
# cache belongs in the source tree (git-ignored), shared with manual runs.
HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import build_initramfs  # noqa: E402

DEFAULT_KERNEL_DIR = os.environ.get("COHEREFS_VM_KERNEL_DIR",
                                    os.path.join(HERE, ".cache"))
VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
QEMU = "qemu-system-x86_64"


class VmError(Exception):
    pass


# --- processes we started -------------------------------------------------

_live = {}  # pid -> (Popen, what)
_live_mu = threading.Lock()


def _spawn(argv, what, log_path, **kw):
    log = open(log_path, "ab")
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, **kw)
    finally:
        log.close()
    with _live_mu:
        _live[p.pid] = (p, what)
    return p


def _stop(p, grace=5.0):
    """Ends one process we started: SIGTERM, then SIGKILL after grace."""
    if p.poll() is None:
        try:
            p.terminate()
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    with _live_mu:
        _live.pop(p.pid, None)


@atexit.register
def _kill_leftovers():
    with _live_mu:
        procs = list(_live.values())
    # Newest first: guests before the backends they are connected to.
    for p, what in reversed(procs):
        if p.poll() is None:
            print("vmlib: killing leftover %s (pid %d)" % (what, p.pid),
                  file=sys.stderr)
            p.kill()
            p.wait(5)


def install_signal_handlers():
    """Turns SIGTERM/SIGINT into SystemExit so `with` blocks clean up."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _wait_for(pred, deadline_s, what, procs=()):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if pred():
            return
        for p in procs:
            if p.poll() is not None:
                raise VmError("%s: process %d exited (%s) while waiting" %
                              (what, p.pid, p.returncode))
        time.sleep(0.02)
    raise VmError("%s: not ready after %.0f s" % (what, deadline_s))


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no %s)" % path


# --- kernel, initramfs, accelerator ----------------------------------------

def ensure_kernel(kernel_dir=DEFAULT_KERNEL_DIR, out=None):
    """Runs scripts/fetch-guest-kernel.sh (cached, prints what it did on
    out, default stdout)."""
    subprocess.run([os.path.join(REPO, "scripts", "fetch-guest-kernel.sh"),
                    kernel_dir], check=True, stdout=out)
    return kernel_dir


def detect_accel():
    """Returns ("kvm"|"tcg", reason)."""
    forced = os.environ.get("COHEREFS_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, "COHEREFS_VM_ACCEL=" + forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm not usable"
    if os.path.exists("/sys/module/kvm_pvm"):
        return "tcg", "kvm_pvm cannot boot a stock kernel"
    return "kvm", "/dev/kvm usable"


# --- backends -------------------------------------------------------------

class Backend:
    """Serves vhost-user-fs on one socket per guest, for one shared dir."""

    name = "?"

    def __init__(self, cache="auto", thread_pool_size=2, log_level="info"):
        self.cache = cache
        self.thread_pool_size = thread_pool_size
        self.log_level = log_level
        self.procs = []

    def start(self, shared_dir, sockets, workdir):
        raise NotImplementedError

    def close(self):
        for p in self.procs:
            _stop(p)
        self.procs = []

    @staticmethod
    def _clear_sockets(sockets):
        # Ours from an earlier start: a stale file would pass _wait_sockets
        # before the new server listens.
        for s in sockets:
            if os.path.exists(s):
                os.unlink(s)

    def _wait_sockets(self, sockets):
        _wait_for(lambda: all(os.path.exists(s) for s in sockets), 10,
                  self.name + " sockets", self.procs)


class VirtiofsdBackend(Backend):
    """QEMU 7.2's C virtiofsd, one process per guest (it serves only one).

    As root it writes /run/virtiofsd/*.pid; each runs in its own mount
    namespace over a private tmpfs on /run so tests leave nothing behind and
    never collide. It exits by itself when its QEMU disconnects.
    -o sandbox=chroot: the default (namespace) forks a child once QEMU
    connects, and that child outlives a SIGTERM to the PID we hold; chroot
    keeps one process and serves the same file-system semantics."""

    name = "virtiofsd"

    def __init__(self, binary=VIRTIOFSD, **kw):
        super().__init__(**kw)
        self.binary = binary

    def start(self, shared_dir, sockets, workdir):
        self._clear_sockets(sockets)
        for i, sock in enumerate(sockets):
            argv = [
                "unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs tmpfs /run && exec "$@"', "virtiofsd",
                self.binary, "--socket-path=" + sock,
                "-o", "source=" + shared_dir, "-o", "cache=" + self.cache,
                "-o", "sandbox=chroot",
                "-o", "xattr", "-o", "log_level=" + self.log_level,
                "--thread-pool-size=%d" % self.thread_pool_size,
            ]
            self.procs.append(_spawn(
                argv, "virtiofsd", os.path.join(workdir, "virtiofsd%d.log" % i)))
        self._wait_sockets(sockets)


class CoherefsBackend(Backend):
    """coherefs-agent with virtiofsd-like flags.

    sockets="shared" (the default) runs ONE agent for all guests, passing
    all sockets at once (the agent serves
    every socket in its comma-separated --socket-path, all on the same
    --shared-dir).
    sockets="per-guest" runs one agent per socket, like virtiofsd.
    per_agent_args(i), if set, gives agent i (0-based) arguments of its own
    (e.g. a distinct --agent-id)."""

    name = "coherefs"

    def __init__(self, agent_bin, sockets="shared", extra_args=(),
                 per_agent_args=None, **kw):
        super().__init__(**kw)
        self.agent_bin = agent_bin
        self.sockets_mode = sockets
        self.extra_args = list(extra_args)
        self.per_agent_args = per_agent_args

    def _argv(self, shared_dir, sockets):
        return ([self.agent_bin, "--socket-path=" + ",".join(sockets)] + [
            "--shared-dir=" + shared_dir, "--cache=" + self.cache,
            "--thread-pool-size=%d" % self.thread_pool_size,
            "--log-level=" + self.log_level,
            # Plaintext gRPC (coordinator link, admin service) on loopback.
            "--insecure"] + self.extra_args)

    def start(self, shared_dir, sockets, workdir):
        if not os.access(self.agent_bin, os.X_OK):
            raise VmError("coherefs-agent not executable: %s" % self.agent_bin)
        self._clear_sockets(sockets)
        groups = [sockets] if self.sockets_mode == "shared" else [
            [s] for s in sockets]
        for i, group in enumerate(groups):
            own = list(self.per_agent_args(i)) if self.per_agent_args else []
            self.procs.append(_spawn(
                self._argv(shared_dir, group) + own, "coherefs-agent",
                os.path.join(workdir, "agent%d.log" % i)))
        self._wait_sockets(sockets)


def add_backend_args(parser):
    g = parser.add_argument_group("backend")
    g.add_argument("--backend", choices=("virtiofsd", "coherefs"),
                   default=os.environ.get("COHEREFS_VM_BACKEND", "virtiofsd"))
    g.add_argument("--virtiofsd-bin", default=VIRTIOFSD)
    g.add_argument("--agent-bin", default=os.environ.get("COHEREFS_AGENT_BIN"),
                   help="coherefs-agent binary (--backend coherefs)")
    g.add_argument("--agent-sockets", choices=("shared", "per-guest"),
                   default=os.environ.get("COHEREFS_AGENT_SOCKETS", "shared"),
                   help="one agent for all guests, or one per guest")
    g.add_argument("--agent-arg", action="append", default=[],
                   help="extra argument for coherefs-agent (repeatable)")
    g.add_argument("--cache", choices=("none", "auto", "always"),
                   default=os.environ.get("COHEREFS_VM_CACHE", "auto"))
    g.add_argument("--thread-pool-size", type=int, default=2)
    g.add_argument("--log-level", default="info")
    g.add_argument("--kernel-dir", default=DEFAULT_KERNEL_DIR)


def backend_from_args(args):
    common = dict(cache=args.cache, thread_pool_size=args.thread_pool_size,
                  log_level=args.log_level)
    if args.backend == "virtiofsd":
        return VirtiofsdBackend(binary=args.virtiofsd_bin, **common)
    if not args.agent_bin:
        raise VmError("--backend coherefs needs --agent-bin "
                      "(or COHEREFS_AGENT_BIN)")
    return CoherefsBackend(args.agent_bin, sockets=args.agent_sockets,
                           extra_args=args.agent_arg, **common)


# --- guests ---------------------------------------------------------------

class Guest:
    """One QEMU guest with the share mounted on /mnt.

    run() is safe to call from one thread at a time per guest; different
    guests may be driven from different threads."""

    MEM = "512M"

    def __init__(self, name, workdir, vfs_socket, tag, kernel, initrd,
                 accel="tcg", mnt="/mnt", extra_qemu_args=()):
        self.name = name
        self.workdir = workdir
        self.vfs_socket = vfs_socket
        self.tag = tag
        self.kernel = kernel
        self.initrd = initrd
        self.accel = accel
        self.mnt = mnt
        self.extra_qemu_args = list(extra_qemu_args)
        self.console = os.path.join(workdir, name + ".console.log")
        self.ctl_path = os.path.join(workdir, name + ".ctl")
        self.qemu = None
        self._sock = None
        self._buf = b""
        self._next_id = 0
        self._any_reply = False
        self.started_at = None
        self.mounted_after_s = None  # QEMU start -> /init's mount line
        self.ready_after_s = None   # QEMU start -> first answer on the channel
        self.mounted_uptime_s = None  # guest uptime when /init had mounted
        self.answered_uptime_s = None  # guest uptime at the answered ping
        self.pings = 0

    def _argv(self):
        cpu = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else [
            "-accel", "tcg", "-cpu", "max"]
        return [QEMU] + cpu + [
            "-machine", "q35,memory-backend=mem", "-m", self.MEM, "-smp", "1",
            "-object",
            "memory-backend-memfd,id=mem,size=%s,share=on" % self.MEM,
            "-nodefaults", "-display", "none", "-no-reboot",
            "-chardev", "socket,id=vfs,path=" + self.vfs_socket,
            "-device", "vhost-user-fs-pci,chardev=vfs,tag=" + self.tag,
            "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 quiet panic=-1 coherefs.tag=%s "
                       "coherefs.mnt=%s" % (self.tag, self.mnt),
            "-serial", "file:" + self.console,
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" %
            self.ctl_path,
            "-serial", "chardev:ctl",
        ] + self.extra_qemu_args

    def start(self):
        if os.path.exists(self.ctl_path):  # left by a failed earlier boot
            os.unlink(self.ctl_path)
        self.started_at = time.monotonic()
        self.qemu = _spawn(self._argv(), "qemu " + self.name,
                           os.path.join(self.workdir, self.name + ".qemu.log"))

    def wait_ready(self, deadline_s=60):
        """Pings the command channel until the guest answers."""
        _wait_for(lambda: os.path.exists(self.ctl_path), 10,
                  self.name + " control socket", [self.qemu])
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

        def connected():
            try:
                self._sock.connect(self.ctl_path)
                return True
            except (ConnectionRefusedError, FileNotFoundError):
                return False
        _wait_for(connected, 10, self.name + " control socket", [self.qemu])
        end = time.monotonic() + deadline_s
        # /init prints its mount result on the console just before it
        # serves the channel; pinging earlier only queues pings it drops.
        _wait_for(lambda: b"init: virtiofs " in _read_bytes(self.console),
                  deadline_s, self.name + " /init (console)", [self.qemu])
        self.mounted_after_s = time.monotonic() - self.started_at
        # Ping often (a ping can still be lost while the guest switches the
        # port to raw mode). Any reply proves the channel works; the status
        # command after it then gets a long timeout.
        pings = 0
        while True:
            if self.qemu.poll() is not None:
                raise VmError("%s: QEMU exited (%s) during boot\n%s" % (
                    self.name, self.qemu.returncode, _tail(self.console)))
            if time.monotonic() > end:
                raise VmError("%s: no answer on the command channel after "
                              "%.0f s\n%s" % (self.name, deadline_s,
                                              _tail(self.console)))
            pings += 1
            status = "cat /tmp/mount.status; cut -d' ' -f1 /proc/uptime"
            try:
                rc, out = self.run(status, timeout=0.25)
            except TimeoutError:
                if not self._any_reply:
                    continue
                rc, out = self.run(status, timeout=30)
            self.ready_after_s = time.monotonic() - self.started_at
            words = out.split()
            if len(words) != 3 or words[0] != "mounted":
                raise VmError("%s: share not mounted (%s)\n%s" % (
                    self.name, out.strip(), _tail(self.console)))
            self.mounted_uptime_s = float(words[1])
            self.answered_uptime_s = float(words[2])
            self.pings = pings
            return

    def run(self, cmd, timeout=120):
        """Runs a shell script in the guest (cwd /tmp, stdin /dev/null);
        returns (exit status, stdout and stderr together). Raises
        TimeoutError (the guest may still be running it; later commands
        queue behind it) or VmError if QEMU is gone."""
        self._next_id += 1
        cid = "%s-%d" % (self.name, self._next_id)
        line = "%s %s\n" % (cid, base64.b64encode(cmd.encode()).decode())
        self._sock.sendall(line.encode())
        begin, end = ("@@BEGIN " + cid).encode(), ("@@END " + cid + " ").encode()
        deadline = time.monotonic() + timeout
        body, inside = [], False
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                left = deadline - time.monotonic()
                if self.qemu.poll() is not None:
                    raise VmError("%s: QEMU exited (%s) during %r" % (
                        self.name, self.qemu.returncode, cmd[:80]))
                if left <= 0:
                    raise TimeoutError("%s: %r: no reply in %.1f s" %
                                       (self.name, cmd[:80], timeout))
                self._sock.settimeout(left)
                try:
                    chunk = self._sock.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    raise VmError(self.name + ": command channel closed")
                self._buf += chunk
                continue
            raw, self._buf = self._buf[:nl].rstrip(b"\r"), self._buf[nl + 1:]
            if raw.startswith(b"@@END "):
                self._any_reply = True
            if raw == begin:
                inside, body = True, []
            elif inside and raw.startswith(end):
                rc = int(raw[len(end):])
                return rc, base64.b64decode(b"".join(body)).decode(
                    errors="replace")
            elif inside:
                body.append(raw)

    def check(self, cmd, timeout=120):
        """run() that raises VmError unless the script exits 0."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise VmError("%s: %r exited %d:\n%s" % (self.name, cmd, rc, out))
        return out

    def poweroff(self, timeout=15):
        if self.qemu is None:
            return
        if self.qemu.poll() is None and self._sock is not None:
            try:
                self._sock.sendall(("off %s\n" % base64.b64encode(
                    b"sync; poweroff -f").decode()).encode())
                self.qemu.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.close()

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.qemu is not None:
            _stop(self.qemu)


class Cluster:
    """A shared dir, a backend and n guests, all booted in parallel.

    with Cluster(backend, 2) as c: c.guests[0].run(...); c.shared_dir is the
    host path every guest sees at /mnt. Leaving the block powers the guests
    off, stops the backend and removes the temp dir (unless keep=True)."""

    def __init__(self, backend, n, kernel_dir=DEFAULT_KERNEL_DIR,
                 helpers=(), keep=False, boot_deadline_s=90,
                 guest_qemu_args=None):
        # guest_qemu_args(i) -> extra QEMU arguments of guest i, asked for
        # after the backend has started (e.g. a table it exported).
        self.guest_qemu_args = guest_qemu_args
        self.backend = backend
        self.n = n
        self.kernel_dir = kernel_dir
        self.helpers = list(helpers)
        self.keep = keep
        self.boot_deadline_s = boot_deadline_s
        self.guests = []
        self.workdir = None
        self.shared_dir = None
        self.accel, self.accel_reason = detect_accel()

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _start(self):
        initrd = build_initramfs.build(self.kernel_dir, self.kernel_dir,
                                       self.helpers)
        # Short path: unix socket names must fit in 108 bytes.
        self.workdir = tempfile.mkdtemp(prefix="cohvm.", dir="/tmp")
        self.shared_dir = os.path.join(self.workdir, "shared")
        os.mkdir(self.shared_dir)
        os.chmod(self.workdir, 0o755)
        os.chmod(self.shared_dir, 0o755)
        socks = [os.path.join(self.workdir, "vfs%d.sock" % i)
                 for i in range(self.n)]
        self.backend.start(self.shared_dir, socks, self.workdir)
        self._boot(initrd, socks, self.accel)

    def _boot(self, initrd, socks, accel):
        self.guests = [
            Guest("g%d" % i, self.workdir, socks[i], "share", os.path.join(
                self.kernel_dir, "vmlinux"), initrd, accel=accel,
                extra_qemu_args=(self.guest_qemu_args(i)
                                 if self.guest_qemu_args else ()))
            for i in range(self.n)]
        for g in self.guests:
            g.start()
        errors = []

        def wait(g):
            try:
                g.wait_ready(self.boot_deadline_s)
            except Exception as e:  # reported below, for every guest
                errors.append(e)
        threads = [threading.Thread(target=wait, args=(g,), daemon=True)
                   for g in self.guests]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors and accel == "kvm":
            print("vmlib: KVM boot failed (%s); falling back to TCG" %
                  errors[0], file=sys.stderr)
            for g in self.guests:
                g.close()
            # The failed QEMUs hung up; virtiofsd exits then, so restart.
            self.backend.close()
            self.backend.start(self.shared_dir, socks, self.workdir)
            self.accel, self.accel_reason = "tcg", "KVM boot failed"
            return self._boot(initrd, socks, "tcg")
        if errors:
            raise errors[0]

    def __exit__(self, *exc):
        for g in self.guests:
            g.poweroff()
        self.backend.close()
        if self.workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif self.workdir:
            print("vmlib: kept " + self.workdir, file=sys.stderr)
        return False
