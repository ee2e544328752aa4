#!/usr/bin/env python3
"""The README's five-minute walkthrough, run as written.

1. scripts/serve.sh BIN (the daemon half of scripts/run.sh): a coordinator
   and an agent serving volume "default" to sockets vm1 and vm2;
2. `coherectl watch --volume=default` in the background;
3. scripts/guest.sh vm1 as an interactive shell: `cat /mnt/hello` fails
   (and vm1's kernel now caches "no such name");
4. scripts/guest.sh vm2 'echo hello from vm2 > /mnt/hello' (one command);
5. vm1: `cat /mnt/hello` prints vm2's line at once (no stale negative
   entry), and `coherectl status --agent` lists both guests;
6. the watch printed the invalidations; SIGTERM stops serve.sh and both
   daemons exit cleanly.

Ends with "N passed, N failed"; exit 1 on failure, 2 if the set-up failed.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", ""),
                        os.environ.get("TEST_WORKSPACE", "coherefs"))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
import testlib  # noqa: E402
from testlib import free_port, wait_for  # noqa: E402

results = testlib.Results()
check = results.check


class Shell:
    """scripts/guest.sh NAME as an interactive shell driven over a pipe."""

    MARK = "@@walkthrough-done"

    def __init__(self, script, name, env, log):
        self.proc = subprocess.Popen(
            ["bash", script, name], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, env=env, text=True, bufsize=1)

    def run(self, cmd, timeout=120):
        """Returns the output of cmd (its status appended as 'rc=N')."""
        self.proc.stdin.write("%s; echo rc=$?; echo %s\n" % (cmd, self.MARK))
        self.proc.stdin.flush()
        out = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("guest shell ended: " + "".join(out))
            if line.strip() == self.MARK:
                return "".join(out)
            out.append(line)
        raise RuntimeError("no answer from the guest shell")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the guest powers off
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def main():
    scripts = os.path.join(RUNFILES, "scripts")
    home = tempfile.mkdtemp(prefix="cohwalk.", dir="/tmp")
    env = dict(os.environ, COHEREFS_HOME=home,
               COHEREFS_COORDINATOR="127.0.0.1:%d" % free_port(),
               COHEREFS_COORDINATOR_METRICS="127.0.0.1:%d" % free_port(),
               COHEREFS_AGENT_METRICS="127.0.0.1:%d" % free_port(),
               COHEREFS_AGENT_ADMIN="127.0.0.1:%d" % free_port())
    coherectl = os.path.join(RUNFILES, "client", "coherectl")
    ctl_flags = ["--coordinator=" + env["COHEREFS_COORDINATOR"], "--insecure"]
    serve_log = open(os.path.join(home, "serve.log"), "w")
    serve = subprocess.Popen(["bash", os.path.join(scripts, "serve.sh"), RUNFILES],
                             stdout=serve_log, stderr=subprocess.STDOUT, env=env)
    watch = vm1 = None
    try:
        try:
            wait_for(lambda: "coherefs-agent ready" in open(serve_log.name).read()
                     and "volume unfenced" in open(serve_log.name).read(),
                     30, "the daemons (serve.log)")
        except RuntimeError as e:
            print(open(serve_log.name).read())
            print("setup failed: %s" % e)
            return 2
        watch_out = open(os.path.join(home, "watch.out"), "w")
        watch = subprocess.Popen([coherectl, "watch", "--volume=default",
                                  "--seconds=240"] + ctl_flags,
                                 stdout=watch_out, stderr=subprocess.STDOUT)
        guest_log = open(os.path.join(home, "guests.log"), "w")
        vm1 = Shell(os.path.join(scripts, "guest.sh"), "vm1", env, guest_log)
        out = vm1.run("cat /mnt/hello")
        check("vm1 sees no /mnt/hello yet", "rc=1" in out and "No such file" in out, out)

        vm2 = subprocess.run(["bash", os.path.join(scripts, "guest.sh"), "vm2",
                              "echo hello from vm2 > /mnt/hello && cat /mnt/hello"],
                             env=env, capture_output=True, text=True, timeout=300)
        check("vm2 writes /mnt/hello", vm2.returncode == 0 and
              vm2.stdout.strip() == "hello from vm2", vm2.stdout + vm2.stderr)

        out = vm1.run("cat /mnt/hello")
        check("vm1 reads vm2's file at once (no stale negative entry)",
              out.splitlines()[:1] == ["hello from vm2"] and "rc=0" in out, out)
        with open(os.path.join(home, "volume", "hello")) as f:
            check("the file is in the volume directory on the host",
                  f.read() == "hello from vm2\n")

        status = subprocess.run(
            [coherectl, "status", "--agent=" + env["COHEREFS_AGENT_ADMIN"]] + ctl_flags,
            capture_output=True, text=True, timeout=30)
        check("coherectl status lists the agent's guests",
              status.returncode == 0 and "vm1" in status.stdout and
              "vm2" in status.stdout and "default" in status.stdout,
              status.stdout + status.stderr)

        # The create bumped the root directory's slot (and the new file's):
        # the watch printed at least one row under its header.
        def rows():
            lines = open(watch_out.name).read().splitlines()
            return [l for l in lines[2:] if l.split() and l.split()[0].isdigit()]
        try:
            wait_for(lambda: len(rows()) >= 1, 10, "watch rows")
        except RuntimeError:
            pass
        check("coherectl watch showed the invalidations", len(rows()) >= 1,
              open(watch_out.name).read())
    finally:
        if vm1 is not None:
            vm1.close()
        if watch is not None and watch.poll() is None:
            watch.send_signal(signal.SIGTERM)
            watch.wait(10)
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
        try:
            rc = serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            rc = serve.wait()
        log = open(serve_log.name).read()
        check("SIGTERM stops serve.sh and both daemons cleanly",
              rc in (0, 143) and "level=info component=agent" in log and
              'msg=stopped' in log, "rc=%s\n%s" % (rc, log[-3000:]))
        subprocess.run(["rm", "-rf", home])
    return results.finish()


if __name__ == "__main__":
    sys.exit(main())
