"""A coherefs-coordinator process for the coherence tests (Python stdlib).

Coordinator(binary, workdir) runs `coherefs-coordinator
--listen=127.0.0.1:PORT --port-file=F --data-dir=D --volumes=default
--metrics-listen=` with its log in workdir. The first start() binds port 0
and reads the port the coordinator chose; restart() stops the process
(SIGTERM, or SIGKILL with hard=True) and starts it again on the SAME port
and data dir, so agents that hold the address reconnect to it. The process
is only ever signalled by its PID; an atexit hook kills it if a test dies
before stop().
"""

import atexit
import os
import signal
import subprocess
import time

_live = set()


@atexit.register
def _kill_leftovers():
    for p in list(_live):
        if p.poll() is None:
            p.kill()
            p.wait(5)


def stop_process(p, hard=False, grace_s=10):
    """Ends a child we started: SIGTERM (or SIGKILL) by PID, SIGKILL after
    grace_s, reaped. Returns its exit code (None if it was never started)."""
    if p is None:
        return None
    if p.poll() is None:
        p.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


class Coordinator:
    def __init__(self, binary, workdir, volumes="default", extra_args=()):
        self.binary = binary
        self.workdir = workdir
        self.volumes = volumes
        self.extra_args = list(extra_args)
        self.data_dir = os.path.join(workdir, "coord-data")
        self.port_file = os.path.join(workdir, "coord.port")
        self.log_path = os.path.join(workdir, "coordinator.log")
        self.port = 0
        self.proc = None
        self.starts = 0

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, deadline_s=20):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        argv = [self.binary, "--listen=127.0.0.1:%d" % self.port,
                "--port-file=" + self.port_file,
                "--data-dir=" + self.data_dir,
                "--volumes=" + self.volumes,
                "--metrics-listen="] + self.extra_args
        # Plaintext unless the test configures mutual TLS itself.
        if not any(a.startswith("--tls-") for a in self.extra_args):
            argv.append("--insecure")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        _live.add(self.proc)
        self.starts += 1
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text and int(text) > 0:
                    self.port = int(text)
                    return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("coordinator exited %d during start; "
                                   "see %s" % (self.proc.returncode,
                                               self.log_path))
            time.sleep(0.01)
        self.stop(hard=True)
        raise RuntimeError("coordinator wrote no port file in %.0f s" %
                           deadline_s)

    def stop(self, hard=False, grace_s=10):
        """SIGTERM (or SIGKILL) by PID and reap; returns the exit code."""
        p = self.proc
        if p is None:
            return None
        code = stop_process(p, hard, grace_s)
        _live.discard(p)
        self.proc = None
        return code

    def restart(self, hard=False, down_s=0.0):
        """Stops, stays down for down_s, starts on the same port/data dir."""
        self.stop(hard=hard)
        if down_s:
            time.sleep(down_s)
        self.start()
