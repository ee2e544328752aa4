"""Small helpers shared by the Python test harnesses (standard library only).

    import testlib
    res = testlib.Results()
    res.check("agent answers", rc == 0, out)   # prints "ok   ..." or "FAIL ...: detail"
    port = testlib.free_port()
    testlib.parse_metrics(text)["coherefs_x_total"]   # Prometheus text -> floats
    testlib.wait_for(lambda: os.path.exists(sock), 10, "the socket")
    sys.exit(res.finish())                      # prints "N passed, N failed"

Scripts find this file with sys.path.insert(0, <repo>/tests), where <repo>
comes from os.path.realpath(__file__) (under `bazel test` the script is a
runfiles symlink into the source tree).
"""

import socket
import time


class Results:
    """Counts checks; finish() prints the summary line and returns the exit
    status: 1 when a check failed or none ran."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok   " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL " + name + (": %s" % (detail,) if detail != "" else ""),
                  flush=True)
        return ok

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed or not self.passed else 0


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_metrics(text):
    """Prometheus text exposition -> {'name{labels}': float}; comments and
    unparsable values are skipped."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            values[key] = float(value)
        except ValueError:
            pass
    return values


def wait_for(pred, timeout_s, what, interval_s=0.05):
    """Polls pred() until it returns something true (returned), or raises
    RuntimeError naming `what` after timeout_s."""
    end = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= end:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(interval_s)
