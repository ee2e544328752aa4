#!/usr/bin/env python3
"""Builds the test guest's initramfs: busybox-static, the virtio-fs modules,
tests/vm/guest_init.sh as /init, and static helper programs.

Each helper is a C file compiled here with `gcc -static` and installed as
/bin/<name> (name = file name without .c). The archive is an uncompressed
newc cpio (the kernel unpacks it without decompressing, which matters under
TCG). Output is cached by a hash of every input: building again with the
same inputs only returns the path.

Usage: build_initramfs.py --kernel-dir DIR --out-dir DIR [helper.c ...]
prints the path of the archive. Python 3 standard library only.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
BUSYBOX = "/bin/busybox"
INIT = os.path.join(HERE, "guest_init.sh")


class _Cpio:
    """Writes a newc ("070701") archive; every entry owned by root."""

    def __init__(self, f):
        self._f = f
        self._ino = 1

    def _entry(self, name, mode, data=b"", nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
            len(name_b), 0))
        self._ino += 1
        self._f.write(hdr.encode() + name_b)
        self._pad()
        self._f.write(data)
        self._pad()

    def _pad(self):
        self._f.write(b"\0" * (-self._f.tell() % 4))

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, perm=0o644):
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def close(self):
        self._entry("TRAILER!!!", 0)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def build(kernel_dir, out_dir, helpers=()):
    """Returns the path of an initramfs for kernel_dir's modules, building
    it (and compiling helpers) unless a cached one matches every input."""
    modules = _read(os.path.join(kernel_dir, "modules.load")).decode().split()
    inputs = [BUSYBOX, INIT] + [
        os.path.join(kernel_dir, "modules", m + ".ko") for m in modules
    ] + list(helpers)
    h = hashlib.sha256()
    for path in inputs:
        h.update(path.encode() + b"\0" + _read(path))
    out = os.path.join(out_dir, "initramfs-%s.cpio" % h.hexdigest()[:16])
    if os.path.exists(out):
        return out

    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="initramfs.") as work:
        binaries = {}
        for src in helpers:
            name = os.path.basename(src)[:-2]
            exe = os.path.join(work, name)
            subprocess.run(
                ["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", exe, src],
                check=True)
            binaries[name] = _read(exe)
        # A private name, then an atomic rename: concurrent runs may race.
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".initramfs.")
        with os.fdopen(fd, "wb") as f:
            cpio = _Cpio(f)
            for d in ("bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc",
                      "sys", "tmp"):
                cpio.dir(d)
            cpio.file("bin/busybox", _read(BUSYBOX), 0o755)
            cpio.symlink("bin/sh", "busybox")
            for name, data in sorted(binaries.items()):
                cpio.file("bin/" + name, data, 0o755)
            cpio.file("init", _read(INIT), 0o755)
            cpio.file("etc/modules.load", ("\n".join(modules) + "\n").encode())
            for m in modules:
                cpio.file("lib/modules/%s.ko" % m,
                          _read(os.path.join(kernel_dir, "modules", m + ".ko")))
            cpio.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    _prune(out_dir, keep=out)
    return out


def _prune(out_dir, keep, min_age_s=3600):
    """Drops archives built from older inputs, once they are an hour old
    (a run that started before this one may still be booting one)."""
    now = time.time()
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if (name.startswith("initramfs-") and path != keep and
                now - os.path.getmtime(path) > min_age_s):
            os.unlink(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kernel-dir", required=True,
                   help="output of scripts/fetch-guest-kernel.sh")
    p.add_argument("--out-dir", required=True)
    p.add_argument("helpers", nargs="*", help="C files to compile statically")
    args = p.parse_args()
    print(build(args.kernel_dir, args.out_dir, args.helpers))


if __name__ == "__main__":
    sys.exit(main())
