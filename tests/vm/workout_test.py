#!/usr/bin/env python3
"""VM end-to-end workout: two guests at once on one shared directory.

Boots N guests (default 2) on one backend (vmlib: virtiofsd, one process
per guest, or coherefs-agent), and in each guest, in its own subdirectory,
runs the file-system workout: create, write/read back with checksums,
rename, hard link, symlink, chmod/chown, truncate, xattrs, a 1000-entry
readdir, mkdir -p trees, rm -r. Every step is checked inside the guest AND
on the host's view of the shared directory (contents, modes, owners, link
counts, xattrs, removed trees gone). Then each guest reads what the other
wrote, runs tests/vm/conformance.c on the share (and the host runs it on
the backing directory as a baseline), and the guests power off.

Ends with "N passed, N failed"; exit status 1 on any failure, 2 if the VMs
could not be brought up. Flags: see --help (backend flags come from vmlib).
"""

import argparse
import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, HERE)
import vmlib  # noqa: E402

HELPERS = [os.path.join(HERE, "xattr_tool.c"), os.path.join(HERE, "conformance.c")]
# build_initramfs names a helper after its file: xattr_tool.c -> xattr_tool.
XATTR = "xattr_tool"


class Results:
    """Thread-safe pass/fail tally; prints one line per check and keeps
    them for the JUnit XML Bazel asks for (XML_OUTPUT_FILE)."""

    def __init__(self):
        self._mu = threading.Lock()
        self.passed = 0
        self.failed = 0
        self.cases = []  # (name, ok, detail)

    def check(self, name, ok, detail="", quiet=False):
        with self._mu:
            self.cases.append((name, bool(ok), detail))
            if ok:
                self.passed += 1
            else:
                self.failed += 1
            if not quiet:
                print("%s %s%s" % ("PASS" if ok else "FAIL", name,
                                   "" if ok else ": " + detail), flush=True)
        return ok

    def write_junit(self, path, seconds):
        suite = ET.Element("testsuite", name="vm_e2e", tests=str(
            len(self.cases)), failures=str(self.failed), errors="0",
            time="%.2f" % seconds)
        for name, ok, detail in self.cases:
            case = ET.SubElement(suite, "testcase", name=name,
                                 classname="vm_e2e")
            if not ok:
                ET.SubElement(case, "failure", message=detail[:500]).text = \
                    detail
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="utf-8",
                                   xml_declaration=True)

    def eq(self, name, got, want):
        return self.check(name, got == want, "got %r, want %r" % (
            _short(got), _short(want)))


def _short(v):
    return v[:200] + "..." if isinstance(v, (str, bytes)) and len(v) > 200 \
        else v


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        return "<%s>" % e.strerror


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def _first_words(out):
    return [line.split()[0] for line in out.splitlines() if line.strip()]


SEQ = "".join("%d\n" % i for i in range(1, 100001)).encode()


def workout(g, shared_dir, res):
    """The workout in guest g, in /mnt/<g.name>; host checks on shared_dir."""
    n = g.name
    d = "/mnt/%s" % n
    h = os.path.join(shared_dir, n)
    t = lambda name: "%s.%s" % (n, name)  # noqa: E731

    rc, _ = g.run("mkdir -p %s" % d)
    res.eq(t("mkdir"), rc, 0)
    res.check(t("host.mkdir_seen"), os.path.isdir(h), h + " missing")

    # Create and write; read back with checksums on both sides.
    rc, out = g.run("seq 1 100000 > %s/seq.txt && sha256sum %s/seq.txt" % (d, d))
    res.eq(t("write.seq_sha256_in_guest"), _first_words(out)[:1], [_sha(SEQ)])
    res.eq(t("host.seq_contents"), _sha(_read(h + "/seq.txt")), _sha(SEQ))

    rc, out = g.run(
        "head -c 1048576 /dev/urandom > {d}/rand.bin && sha256sum {d}/rand.bin"
        " && md5sum {d}/rand.bin && echo 3 > /proc/sys/vm/drop_caches && "
        "sha256sum {d}/rand.bin".format(d=d))
    words = _first_words(out)
    host_rand = _read(h + "/rand.bin")
    res.eq(t("write.rand_1mib_rc"), rc, 0)
    res.eq(t("host.rand_size"), len(host_rand), 1048576)
    res.eq(t("host.rand_sha256_matches_guest"), [_sha(host_rand)],
           words[:1])
    res.eq(t("host.rand_md5_matches_guest"),
           [hashlib.md5(host_rand).hexdigest()], words[1:2])
    res.eq(t("read.rand_after_drop_caches"), words[2:3], words[:1])

    from_host = ("written by the host for %s\n" % n).encode() + bytes(range(256))
    with open(h + "/from_host.bin", "wb") as f:
        f.write(from_host)
    rc, out = g.run("md5sum %s/from_host.bin" % d)
    res.eq(t("read.host_written_file_md5"), _first_words(out)[:1],
           [hashlib.md5(from_host).hexdigest()])

    rc, out = g.run("printf 'line1\\n' > {d}/note.txt && printf 'line2\\n' >> "
                    "{d}/note.txt && cat {d}/note.txt".format(d=d))
    res.eq(t("write.append_read_back"), out, "line1\nline2\n")
    res.eq(t("host.append_contents"), _read(h + "/note.txt"), b"line1\nline2\n")

    # Rename.
    rc, out = g.run("mv {d}/note.txt {d}/renamed.txt && test ! -e {d}/note.txt"
                    " && cat {d}/renamed.txt".format(d=d))
    res.eq(t("rename.guest"), (rc, out), (0, "line1\nline2\n"))
    res.check(t("host.rename_old_name_gone"), _lstat(h + "/note.txt") is None,
              "note.txt still exists")
    res.eq(t("host.rename_new_name"), _read(h + "/renamed.txt"),
           b"line1\nline2\n")

    # Hard link.
    rc, out = g.run("ln {d}/renamed.txt {d}/hard && stat -c '%h %i' "
                    "{d}/renamed.txt {d}/hard".format(d=d))
    lines = out.split()
    res.check(t("link.guest_nlink_2_same_inode"),
              rc == 0 and len(lines) == 4 and lines[0] == lines[2] == "2"
              and lines[1] == lines[3], "got %r" % out)
    a, b = _lstat(h + "/renamed.txt"), _lstat(h + "/hard")
    res.check(t("host.link_nlink_2_same_inode"),
              a and b and a.st_nlink == 2 and a.st_ino == b.st_ino,
              "renamed %s hard %s" % (a, b))

    # Symlink.
    rc, out = g.run("ln -s renamed.txt {d}/sym && readlink {d}/sym && "
                    "cat {d}/sym".format(d=d))
    res.eq(t("symlink.readlink_and_follow"), (rc, out),
           (0, "renamed.txt\nline1\nline2\n"))
    try:
        host_link = os.readlink(h + "/sym")
    except OSError as e:
        host_link = "<%s>" % e.strerror
    res.eq(t("host.symlink_target"), host_link, "renamed.txt")

    # chmod / chown.
    rc, out = g.run("chmod 0640 {d}/renamed.txt && chown 1234:5678 "
                    "{d}/renamed.txt && stat -c '%a %u %g' {d}/hard"
                    .format(d=d))
    res.eq(t("chmod_chown.guest_sees_via_other_link"), (rc, out),
           (0, "640 1234 5678\n"))
    st = _lstat(h + "/renamed.txt")
    res.eq(t("host.chmod_chown"),
           st and (st.st_mode & 0o7777, st.st_uid, st.st_gid),
           (0o640, 1234, 5678))

    # Truncate down, then up (the hole reads as zeros).
    rc, out = g.run("truncate -s 1000 {d}/seq.txt && stat -c %s {d}/seq.txt &&"
                    " truncate -s 5000 {d}/seq.txt && stat -c %s {d}/seq.txt "
                    "&& sha256sum {d}/seq.txt".format(d=d))
    want = SEQ[:1000] + bytes(4000)
    res.eq(t("truncate.guest_sizes_and_sha256"), out.split()[:3],
           ["1000", "5000", _sha(want)])
    res.eq(t("host.truncate_contents"), _sha(_read(h + "/seq.txt")), _sha(want))

    # Extended attributes (static helper; busybox has no setfattr).
    rc, out = g.run(
        "{x} set {d}/renamed.txt user.color blue && {x} set {d}/renamed.txt "
        "user.shape round && {x} get {d}/renamed.txt user.color && echo && "
        "{x} list {d}/renamed.txt".format(x=XATTR, d=d))
    res.eq(t("xattr.set_get_list"), (rc, out.split()),
           (0, ["blue", "user.color", "user.shape"]))
    try:
        hv = os.getxattr(h + "/renamed.txt", "user.shape")
    except OSError as e:
        hv = "<%s>" % e.strerror
    res.eq(t("host.xattr_set_seen"), hv, b"round")
    rc, out = g.run("{x} remove {d}/renamed.txt user.shape && "
                    "{x} get {d}/renamed.txt user.shape".format(x=XATTR, d=d))
    res.eq(t("xattr.removed_gives_enodata"), (rc, out.strip()),
           (1, "xattr: get: ENODATA"))
    names = sorted(x for x in os.listxattr(h + "/renamed.txt")
                   if x.startswith("user."))
    res.eq(t("host.xattr_remove_seen"), names, ["user.color"])
    os.setxattr(h + "/renamed.txt", "user.fromhost", b"yes")
    rc, out = g.run("%s get %s/renamed.txt user.fromhost" % (XATTR, d))
    res.eq(t("xattr.host_set_seen_in_guest"), (rc, out), (0, "yes"))

    # readdir of 1000 entries.
    names = sorted("f%d" % i for i in range(1000))
    want_md5 = hashlib.md5("".join(x + "\n" for x in names).encode()).hexdigest()
    rc, out = g.run(
        "mkdir {d}/many && cd {d}/many && i=0 && while [ $i -lt 1000 ]; do "
        ": > f$i || exit 1; i=$((i + 1)); done && ls -1 | wc -l && "
        "ls -1 | sort | md5sum && ls -a | wc -l".format(d=d), timeout=300)
    res.eq(t("readdir.1000_entries_count_md5_dots"),
           (rc, out.split()[:4]), (0, ["1000", want_md5, "-", "1002"]))
    try:
        host_names = sorted(os.listdir(h + "/many"))
    except OSError as e:
        host_names = ["<%s>" % e.strerror]
    res.eq(t("host.readdir_1000_entries"), host_names, names)
    for i in range(10):
        open(h + "/many/host%d" % i, "w").close()
    rc, out = g.run("ls -1 %s/many | wc -l && ls -1 %s/many | grep -c host"
                    % (d, d))
    res.eq(t("readdir.sees_host_added_entries"), out.split(), ["1010", "10"])

    # mkdir -p trees.
    rc, out = g.run(
        "mkdir -p {d}/tree/a/b/c/d/e {d}/tree/x/y && echo leaf > "
        "{d}/tree/a/b/c/d/e/leaf && cd {d} && find tree | sort".format(d=d))
    want_tree = sorted(["tree", "tree/a", "tree/a/b", "tree/a/b/c",
                        "tree/a/b/c/d", "tree/a/b/c/d/e",
                        "tree/a/b/c/d/e/leaf", "tree/x", "tree/x/y"])
    res.eq(t("mkdir_p.tree_in_guest"), out.split(), want_tree)
    host_tree = []
    for root, dirs, files in os.walk(h + "/tree"):
        rel = os.path.relpath(root, h)
        host_tree.append(rel)
        host_tree.extend(os.path.join(rel, f) for f in files)
    res.eq(t("host.mkdir_p_tree"), sorted(host_tree), want_tree)
    res.eq(t("host.tree_leaf"), _read(h + "/tree/a/b/c/d/e/leaf"), b"leaf\n")

    # rm -r, unlink of one hard link.
    rc, out = g.run("rm -r {d}/tree {d}/many && test ! -e {d}/tree && "
                    "test ! -e {d}/many && rm {d}/hard && stat -c %h "
                    "{d}/renamed.txt".format(d=d), timeout=300)
    res.eq(t("rm_r.guest"), (rc, out), (0, "1\n"))
    res.check(t("host.rm_r_trees_gone"),
              _lstat(h + "/tree") is None and _lstat(h + "/many") is None,
              "tree or many still on the host")
    st = _lstat(h + "/renamed.txt")
    res.eq(t("host.unlink_link_nlink_1"),
           (st and st.st_nlink, _lstat(h + "/hard")), (1, None))


def cross_check(g, other, res):
    """g reads what `other` left in the share."""
    d = "/mnt/%s" % other.name
    t = "%s.cross.%s" % (g.name, other.name)
    rc, out = g.run("cat {d}/renamed.txt && stat -c '%a %u %g %h' "
                    "{d}/renamed.txt && {x} get {d}/renamed.txt user.color && "
                    "echo && readlink {d}/sym && test ! -e {d}/tree && ls {d}"
                    .format(d=d, x=XATTR))
    res.eq(t + ".contents_mode_owner_xattr_listing", (rc, out.split()),
           (0, ["line1", "line2", "640", "1234", "5678", "1", "blue",
                "renamed.txt", "from_host.bin", "rand.bin", "renamed.txt",
                "seq.txt", "sym"]))


_COUNTS = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)


def fold_conformance(label, out, res):
    """Folds a conformance run's PASS/FAIL lines into res as checks named
    label.check, and checks they add up to its own summary line."""
    passed = failed = 0
    for line in out.splitlines():
        verdict, _, rest = line.partition(" ")
        name, _, detail = rest.partition(": ")
        if verdict in ("PASS", "FAIL"):
            res.check("%s.%s" % (label, name), verdict == "PASS", detail,
                      quiet=True)
            passed += verdict == "PASS"
            failed += verdict == "FAIL"
        if verdict in ("FAIL", "SKIP") or line.startswith("conformance:"):
            print("%s: %s" % (label, line), flush=True)
    m = _COUNTS.search(out)
    res.check(label + ".summary_matches_checks",
              m is not None and (int(m.group(1)), int(m.group(2))) == (
                  passed, failed),
              "summary %r, lines %d passed %d failed, output tail:\n%s" % (
                  m and m.group(0), passed, failed, out[-2000:]))
    print("%s: %d passed, %d failed" % (label, passed, failed), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    vmlib.add_backend_args(p)
    p.add_argument("--guests", type=int, default=2)
    p.add_argument("--no-conformance", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args()
    vmlib.install_signal_handlers()

    t0 = time.monotonic()
    res = Results()
    try:
        vmlib.ensure_kernel(args.kernel_dir)
        backend = vmlib.backend_from_args(args)
    except (vmlib.VmError, subprocess.CalledProcessError) as e:
        # Not a skip: a run that cannot test anything fails.
        print("vm: cannot start: %s" % e, flush=True)
        print("0 passed, 1 failed")
        return 2
    timings = {}
    try:
        with vmlib.Cluster(backend, args.guests, kernel_dir=args.kernel_dir,
                           helpers=HELPERS, keep=args.keep) as c:
            timings["bring-up (all guests answering)"] = time.monotonic() - t0
            print("vm: backend %s cache=%s, %d guests, accel %s (%s)" % (
                backend.name, backend.cache, len(c.guests), c.accel,
                c.accel_reason), flush=True)
            for g in c.guests:
                print("vm: %s share mounted %.2f s after QEMU start, "
                      "command channel answered at %.2f s (ping %d); guest "
                      "uptime %.2f s at mount, %.2f s at answer" % (
                          g.name, g.mounted_after_s, g.ready_after_s,
                          g.pings, g.mounted_uptime_s, g.answered_uptime_s),
                      flush=True)

            def one(g):
                start = time.monotonic()
                try:
                    workout(g, c.shared_dir, res)
                except Exception as e:  # counted, and the others go on
                    res.check(g.name + ".workout_completed", False, repr(e))
                timings[g.name + " workout"] = time.monotonic() - start

            threads = [threading.Thread(target=one, args=(g,), daemon=True)
                       for g in c.guests]
            start = time.monotonic()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            timings["workout (guests in parallel)"] = time.monotonic() - start

            for i, g in enumerate(c.guests):
                try:
                    cross_check(g, c.guests[(i + 1) % len(c.guests)], res)
                except (TimeoutError, vmlib.VmError) as e:
                    res.check(g.name + ".cross_check_completed", False,
                              repr(e))

            if not args.no_conformance:
                outs = {}

                def conf(g):
                    start = time.monotonic()
                    g.check("mkdir -p /mnt/conf-%s" % g.name)
                    _, outs[g.name] = g.run(
                        "conformance /mnt/conf-%s --other /tmp" % g.name,
                        timeout=300)
                    timings[g.name + " conformance"] = time.monotonic() - start
                threads = [threading.Thread(target=conf, args=(g,),
                                            daemon=True)
                           for g in c.guests]
                for th in threads:
                    th.start()
                # Baseline: the same suite on the backing directory itself.
                exe = os.path.join(c.workdir, "conformance")
                subprocess.run(["gcc", "-static", "-O2", "-o", exe,
                                HELPERS[1]], check=True)
                host_dir = os.path.join(c.shared_dir, "conf-host")
                os.mkdir(host_dir)
                host = subprocess.run([exe, host_dir, "--other", "/dev/shm"],
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      timeout=120)
                for th in threads:
                    th.join()
                for g in c.guests:
                    fold_conformance("conformance[%s]" % g.name,
                                     outs.get(g.name, ""), res)
                fold_conformance("conformance[host]", host.stdout,
                                 res)
    except vmlib.VmError as e:
        print("vm: could not run the VMs: %s" % e, flush=True)
        res.check("vm.bring_up", False, str(e).splitlines()[0])
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 2
    timings["total"] = time.monotonic() - t0
    for k, v in timings.items():
        print("time: %-32s %6.2f s" % (k, v))
    if os.environ.get("XML_OUTPUT_FILE"):
        res.write_junit(os.environ["XML_OUTPUT_FILE"], timings["total"])
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 0 if res.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
