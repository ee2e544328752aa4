"""What a benchmark run records about the machine it ran on.

Shared by bench/vm/bench.py and bench/coherence/coherence_bench.py: the host,
QEMU and guest kernel, how guests are accelerated, and the hash of the
measured binary (the tree may be dirty, the hash says which build ran).
"""

import hashlib
import os
import platform
import socket
import subprocess


def sha256_of(path):
    """Hex SHA-256 of a file, or None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except (OSError, TypeError):
        return None


def command_output(argv):
    """A command's stripped stdout, or None if it cannot run in 30 s."""
    try:
        return subprocess.run(argv, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def vm_machine_notes(vmlib, kernel_dir, repo, thread_pool_size):
    """The notes every VM benchmark records; callers add their own."""
    try:
        with open(os.path.join(kernel_dir, "KERNEL")) as f:
            kernel = f.read().strip()
    except OSError:
        kernel = None
    accel, reason = vmlib.detect_accel()
    return {
        "host": socket.gethostname(), "nproc": os.cpu_count(),
        "host_kernel": platform.release(),
        "qemu": (command_output([vmlib.QEMU, "--version"]) or "").split("\n")[0],
        "guest_kernel": kernel, "accel": accel, "accel_reason": reason,
        "guest_mem": vmlib.Guest.MEM, "guest_cpus": 1,
        "thread_pool_size": thread_pool_size,
        "git": command_output(["git", "-C", repo, "describe", "--always", "--dirty"]),
    }


def add_guest_run_arguments(parser, vmlib, workload_timeout):
    """The options every VM benchmark command takes about running guests
    and where its results go."""
    parser.add_argument("--workload-timeout", type=float, default=workload_timeout,
                        help="seconds one guest command may take")
    parser.add_argument("--boot-deadline", type=float, default=180)
    parser.add_argument("--kernel-dir", default=vmlib.DEFAULT_KERNEL_DIR)
    parser.add_argument("--out-json")
    parser.add_argument("--out-csv")
    parser.add_argument("--keep", action="store_true",
                        help="keep the VM work dirs (/tmp/cohvm.*)")
