#!/usr/bin/env python3
"""Corrupt store at start (issue 6, faults): the coordinator must refuse to
start on a damaged RocksDB directory -- exit status 1 and one error line
naming the data dir -- rather than serve versions that may have lost
acknowledged bumps; a torn WAL tail (an unacknowledged write cut short by a
crash) is the one damage it must recover from, with every acknowledged bump
still there.

Set-up: a bump storm, SIGKILL, restart (RocksDB flushes the recovered WAL to
an SST), another storm, SIGKILL: the directory then has an SST, a live WAL,
a MANIFEST and CURRENT, and the acks of both storms. For each case the
pristine copy is restored, damaged, and the coordinator started:

  refuse: sst-flip, sst-truncate, manifest-flip, manifest-truncate,
          current-garbage, current-empty, wal-flip (a bump's value inside
          the WAL), sst-missing, clean-stop-manifest-truncate (after a
          clean stop: every record in SSTs, the WAL empty)
  start:  pristine (the control), wal-torn-tail (a partial record appended)
          -- and then a Snapshot must hold every acknowledged bump.

  corrupt_store_test.py --coordinator-bin=P --storm-bin=P
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faults_lib  # noqa: E402


def files(d, suffix="", prefix=""):
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.endswith(suffix) and f.startswith(prefix))


def flip(path, offset, n=16):
    with open(path, "r+b") as f:
        f.seek(offset)
        data = bytearray(f.read(n))
        for i in range(len(data)):
            data[i] ^= 0x5A
        f.seek(offset)
        f.write(data)


def flip_after(path, needle):
    """Flips the 8 bytes after the last occurrence of needle (a value)."""
    with open(path, "rb") as f:
        blob = f.read()
    at = blob.rfind(needle)
    if at < 0:
        raise RuntimeError("%r not in %s" % (needle, path))
    flip(path, at + len(needle), 8)


def truncate_half(path):
    os.truncate(path, os.path.getsize(path) // 2)


def storm_for(args, crd, work, seconds):
    st = faults_lib.Storm(args.storm_bin, crd.target, work, n=2, threads=2)
    st.start()
    end = time.monotonic() + 10
    while len(st.acks()[0]) < 50 and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(seconds)
    st.stop()
    return st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--storm-bin", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.coordinator_bin = os.path.abspath(args.coordinator_bin)
    args.storm_bin = os.path.abspath(args.storm_bin)
    res = faults_lib.Results()
    work = tempfile.mkdtemp(prefix="cohcorrupt.", dir="/tmp")
    try:
        crd = faults_lib.FaultCoordinator(args.coordinator_bin, work)
        crd.start()
        storm_for(args, crd, work, 0.5)
        crd.stop(hard=True)
        crd.start()
        st = storm_for(args, crd, work, 0.5)
        _, _, good = faults_lib.snapshot_retry(args.storm_bin, crd.target)
        crd.stop(hard=True)
        acks, _ = st.acks()
        data = crd.data_dir
        ssts, wals = files(data, ".sst"), files(data, ".log")
        res.check("set-up: %d acks, %d SST, %d WAL (%s bytes)" % (
            len(acks), len(ssts), len(wals),
            [os.path.getsize(w) for w in wals]),
            acks and ssts and wals and os.path.getsize(wals[-1]) > 0)
        res.check("set-up: every ack in the snapshot before damage",
                   not faults_lib.lost_acks(acks, good))
        pristine = os.path.join(work, "pristine")
        shutil.copytree(data, pristine)

        def newest(suffix="", prefix=""):
            return files(data, suffix, prefix)[-1]

        # The live WAL holds the second storm's bumps: a version value
        # follows each "V" key ("V" volume '\0' slot u32).
        cases = [
            ("pristine", None, True),
            ("wal-torn-tail", lambda: open(newest(".log"), "ab").write(
                # A record header promising 1000 bytes, then 3 of them: an
                # append cut short by a crash (never acknowledged).
                b"\x11\x22\x33\x44" + (1000).to_bytes(2, "little") +
                b"\x01abc"), True),
            ("wal-flip", lambda: flip_after(newest(".log"),
                                            b"Vdefault\x00\x00\x00\x00"),
             False),
            ("sst-flip", lambda: flip(newest(".sst"),
                                      os.path.getsize(newest(".sst")) // 4),
             False),
            ("sst-truncate", lambda: truncate_half(newest(".sst")), False),
            ("sst-missing", lambda: os.unlink(newest(".sst")), False),
            ("manifest-flip", lambda: flip(
                newest(prefix="MANIFEST-"),
                os.path.getsize(newest(prefix="MANIFEST-")) // 2), False),
            ("manifest-truncate",
             lambda: truncate_half(newest(prefix="MANIFEST-")), False),
            ("current-garbage", lambda: open(os.path.join(data, "CURRENT"),
                                             "w").write("MANIFEST-999999\n"),
             False),
            ("current-empty", lambda: os.truncate(
                os.path.join(data, "CURRENT"), 0), False),
        ]
        # After a clean stop RocksDB has flushed everything to SSTs and the
        # WAL is empty: a truncated MANIFEST then drops whole SSTs, the
        # epoch record with them (the COHEREFS_EPOCH witness must catch it).
        crd.start()
        crd.stop()
        clean = os.path.join(work, "clean")
        shutil.copytree(data, clean)
        cases.append(("clean-stop-manifest-truncate",
                      lambda: truncate_half(newest(prefix="MANIFEST-")),
                      False, clean))
        for case in cases:
            name, damage, should_start = case[:3]
            shutil.rmtree(data)
            shutil.copytree(case[3] if len(case) > 3 else pristine, data)
            if damage is not None:
                damage()
            log_start = len(crd.log_text())
            started, code = True, None
            try:
                crd.start()
            except RuntimeError:
                started = False
                code = crd.proc.returncode if crd.proc else None
                crd.forget()
            log = crd.log_text()[log_start:].splitlines()
            errors = [l for l in log if "level=error" in l]
            if should_start:
                ok = res.check("%s: coordinator starts" % name, started,
                                "\n".join(log[-3:]))
                if ok:
                    _, _, versions = faults_lib.snapshot_retry(
                        args.storm_bin, crd.target)
                    lost = faults_lib.lost_acks(acks, versions)
                    res.check("%s: every acknowledged bump there (%d acks)"
                               % (name, len(acks)), not lost, lost[:5])
                    res.check("%s: versions as before the stop" % name,
                               versions == good)
                    crd.stop()
                continue
            if started:
                crd.stop(hard=True)
            res.check("%s: refuses to start (exit %s)" % (name, code),
                       not started and code == 1, "\n".join(log[-3:]))
            res.check("%s: one error line naming the data dir" % name,
                       len(errors) == 1 and data in errors[0],
                       "\n".join(errors or log[-3:]))
            if errors:
                print("     " + errors[0][:300])
    finally:
        if args.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    faults_lib.install_signal_handlers()
    sys.exit(main())
