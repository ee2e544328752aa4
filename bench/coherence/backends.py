"""The five ways bench/coherence serves one shared directory to two guests.

Every mode is a tests/vm/vmlib Backend, so vmlib.Cluster (and the coherence
checker's VmDriver, which takes a backend) boots guests on it unchanged:

  coherefs-strict, coherefs-bounded
      ONE coherefs-coordinator and TWO coherefs-agents, one per guest, as
      two "hosts" on this machine: distinct --agent-id, the same
      --shared-dir, --coordinator=127.0.0.1:<port>, --coherence=MODE,
      --cache=always (coherence's default; leases cap at --lease-max-ms),
      each with its own --metrics-listen on loopback.
  virtiofsd-always, virtiofsd-auto, virtiofsd-none
      one QEMU virtiofsd per guest on the same directory
      (vmlib.VirtiofsdBackend), -o cache=MODE.

Prepared(backend, prepare) runs prepare(shared_dir) once, before the
backend's daemons start, so the benchmark's tree exists on the host before
any daemon or guest has looked at the directory.

Processes are vmlib's and tests/coherence/coordinator.py's (ended by PID;
killed at interpreter exit if still alive). Python 3 standard library only.
"""

import os
import re
import socket
import sys
import urllib.request

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "vm"))
sys.path.insert(0, os.path.join(REPO, "tests", "coherence"))
import coordinator  # noqa: E402  (tests/coherence/coordinator.py)
import vmlib  # noqa: E402

# name -> (system, cache, coherence)
MODES = {
    "coherefs-strict": ("coherefs", "always", "strict"),
    "coherefs-bounded": ("coherefs", "always", "bounded"),
    "virtiofsd-always": ("virtiofsd", "always", None),
    "virtiofsd-auto": ("virtiofsd", "auto", None),
    "virtiofsd-none": ("virtiofsd", "none", None),
}
DEFAULT_MODES = tuple(MODES)


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CoherefsPair(vmlib.CoherefsBackend):
    """Backend: one coordinator (tests/coherence/coordinator.py) and one
    coherefs-agent per guest socket (vmlib's per-guest agents), each with
    its own agent id and metrics port.

    coherence: "strict" | "bounded" | "off", or None to pass no --coherence
    flag at all (for agents that predate it: then both coherefs modes are
    the same "coordinator, no coherence" setup, and the caller must say
    so). metrics_urls: one per agent, in socket order."""

    def __init__(self, agent_bin, coordinator_bin, cache="always",
                 coherence="strict", thread_pool_size=2, log_level="warn",
                 extra_args=()):
        super().__init__(agent_bin, sockets="per-guest",
                         extra_args=extra_args,
                         per_agent_args=self._next_agent_args, cache=cache,
                         thread_pool_size=thread_pool_size,
                         log_level=log_level)
        self.coordinator_bin = coordinator_bin
        self.coherence = coherence
        self.coordinator = None
        self.coordinator_target = None
        self.metrics_urls = []

    def own_args(self, i, metrics_port):
        """Agent i's arguments beyond vmlib's common ones."""
        argv = ["--coordinator=" + self.coordinator_target,
                "--agent-id=bench-host%d" % i,
                "--metrics-listen=127.0.0.1:%d" % metrics_port]
        if self.coherence is not None:
            argv.append("--coherence=" + self.coherence)
        return argv

    def _next_agent_args(self, i):
        port = free_port()
        self.metrics_urls.append("http://127.0.0.1:%d/metrics" % port)
        return self.own_args(i, port)

    def start(self, shared_dir, sockets, workdir):
        if not os.access(self.coordinator_bin, os.X_OK):
            raise vmlib.VmError("not executable: %s" % self.coordinator_bin)
        self.coordinator = coordinator.Coordinator(self.coordinator_bin,
                                                   workdir)
        self.coordinator.start()
        self.coordinator_target = self.coordinator.target
        self.metrics_urls = []
        super().start(shared_dir, sockets, workdir)

    def close(self):
        # The agents first: they would retry a vanished coordinator.
        super().close()
        if self.coordinator is not None:
            self.coordinator.stop()
            self.coordinator = None


class Prepared:
    """Wraps a backend: prepare(shared_dir) once, then the backend starts.
    (vmlib's KVM fallback restarts the backend; the tree is made once.)"""

    def __init__(self, backend, prepare):
        self.inner = backend
        self.prepare = prepare
        self.prepared = False
        self.name = backend.name

    def start(self, shared_dir, sockets, workdir):
        if not self.prepared:
            self.prepare(shared_dir)
            self.prepared = True
        self.inner.start(shared_dir, sockets, workdir)

    def close(self):
        self.inner.close()

    @property
    def metrics_urls(self):
        return getattr(self.inner, "metrics_urls", [])


def make_backend(mode, agent_bin=None, coordinator_bin=None,
                 thread_pool_size=2, log_level="warn", agent_args=(),
                 pass_coherence=True):
    """A fresh backend for one of MODES."""
    system, cache, coherence = MODES[mode]
    if system == "virtiofsd":
        return vmlib.VirtiofsdBackend(cache=cache,
                                      thread_pool_size=thread_pool_size,
                                      log_level=log_level)
    return CoherefsPair(agent_bin, coordinator_bin, cache=cache,
                        coherence=coherence if pass_coherence else None,
                        thread_pool_size=thread_pool_size,
                        log_level=log_level, extra_args=agent_args)


# --- Prometheus text format ------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse_metrics(text):
    """{"name{labels}": value} for every sample line (labels as written)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        except ValueError:
            continue
    return out


def scrape(url, timeout=5.0):
    """parse_metrics of url, or {} if it cannot be read (an agent without
    a metrics endpoint must not end the benchmark)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return parse_metrics(r.read().decode(errors="replace"))
    except OSError:
        return {}


def delta(before, after):
    """after - before for every sample that changed (counters, sums,
    buckets); samples that appeared count from 0."""
    out = {}
    for k, v in after.items():
        d = v - before.get(k, 0.0)
        if d != 0:
            out[k] = d
    return out


_OP = re.compile(r'op="([^"]+)"')


def fuse_ops(d):
    """From a metrics delta: {opcode: (requests, mean seconds or None)}."""
    counts, sums = {}, {}
    for k, v in d.items():
        m = _OP.search(k)
        if not m:
            continue
        if k.startswith("coherefs_agent_fuse_requests_total"):
            counts[m.group(1)] = counts.get(m.group(1), 0) + v
        elif k.startswith("coherefs_agent_fuse_request_duration_seconds_sum"):
            sums[m.group(1)] = sums.get(m.group(1), 0) + v
    return {op: (int(n), sums[op] / n if op in sums and n else None)
            for op, n in counts.items()}


def mean_ms(ops, op):
    """Mean ms per request of opcode op (any case) in a fuse_ops() result,
    or None."""
    for name, (n, mean_s) in ops.items():
        if name.lower() == op.lower() and n and mean_s is not None:
            return mean_s * 1e3
    return None


# Short names of the agent's coherence counters (agent/metrics/
# coherence_collector.cc), summed over their labels by coherence_counts().
COHERENCE_COUNTERS = {
    "coherefs_agent_leases_granted_total": "leases",
    "coherefs_agent_leases_refused_total": "refused",
    "coherefs_agent_slot_resolves_total": "resolves",
    "coherefs_agent_bumped_slots_total": "bumps",
    "coherefs_agent_strict_waits_total": "strict_waits",
    "coherefs_agent_strict_wait_seconds_total": "strict_wait_s",
}


def coherence_counts(d):
    """{short name: value} of COHERENCE_COUNTERS in a metrics delta."""
    out = {}
    for k, v in d.items():
        short = COHERENCE_COUNTERS.get(k.split("{")[0])
        if short:
            out[short] = out.get(short, 0.0) + v
    return out


def wait_metrics(d):
    """Samples of a delta whose name speaks of strict waits or leases
    (whatever the agent exposes: names are not fixed here)."""
    return {k: v for k, v in d.items()
            if re.search(r"strict|wait|lease", k.split("{")[0])}
