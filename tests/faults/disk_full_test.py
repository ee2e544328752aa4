#!/usr/bin/env python3
"""Disk full under RocksDB (issue 6, faults). The coordinator's data dir is
on a small tmpfs this test mounts (and unmounts on every exit path). Bump
storm clients run; a filler file then takes every free byte:

  - bumps fail with RESOURCE_EXHAUSTED (never OK) while the disk is full
    (less than the store's 8 MiB reserve free, then not a byte), and no ack
    is written meanwhile;
  - the filler is removed: without a restart, bumps succeed again within a
    few seconds (the coordinator resumes RocksDB once space is back);
  - a restart (SIGKILL) afterwards finds every acknowledged bump;
  - a start on a full disk fails cleanly (exit 1, one error line naming the
    data dir) and the next start after freeing space works.

  disk_full_test.py --coordinator-bin=P --storm-bin=P [--size-mb=64]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import faults_lib  # noqa: E402

RESERVE = 8 << 20  # server/rocksdb_store.h kMinFreeBytes


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave=0):
    """Writes zeros to path until about `leave` bytes are free (0: until
    ENOSPC); returns bytes written."""
    n = 0
    block = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as f:
        try:
            while free_bytes(os.path.dirname(path)) > leave + len(block):
                n += f.write(block)
            if leave == 0:
                while True:
                    n += f.write(b"\0" * 512)
        except OSError:
            pass
    return n


def wait_for(pred, within_s, step=0.05):
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def storm_codes(st):
    """code -> count from the storm clients' 'done' lines."""
    codes = {}
    for line in st.acks()[1]:
        part = line.split("codes=")[-1]
        for item in filter(None, part.split(",")):
            code, _, n = item.partition(":")
            codes[code] = codes.get(code, 0) + int(n)
    return codes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--coordinator-bin", required=True)
    ap.add_argument("--storm-bin", required=True)
    ap.add_argument("--size-mb", type=int, default=64)
    args = ap.parse_args()
    args.coordinator_bin = os.path.abspath(args.coordinator_bin)
    args.storm_bin = os.path.abspath(args.storm_bin)
    res = faults_lib.Results()
    work = tempfile.mkdtemp(prefix="cohdiskfull.", dir="/tmp")
    mnt = os.path.join(work, "small")
    os.mkdir(mnt)
    mounted = False
    crd = None
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%dm,mode=0700" % args.size_mb, "tmpfs", mnt],
                       check=True)
        mounted = True
        crd = faults_lib.FaultCoordinator(args.coordinator_bin, work)
        crd.data_dir = os.path.join(mnt, "coord-data")
        crd.start()
        filler = os.path.join(mnt, "filler")

        # 1. Full disk while bumping.
        st = faults_lib.Storm(args.storm_bin, crd.target, work, n=2,
                              threads=2, slots_per_bump=8)
        st.start()
        res.check("storm acks before the disk fills",
                   wait_for(lambda: len(st.acks()[0]) > 200, 20))
        # Below the store's reserve (RocksDbStore::kMinFreeBytes, 8 MiB)
        # but not to the last byte: the coordinator must refuse by itself.
        filled = fill(filler, leave=RESERVE // 2)
        # Whatever was in flight settles; from then on nothing is acked.
        time.sleep(1.0)
        before = len(st.acks()[0])
        time.sleep(2.0)
        during = len(st.acks()[0])
        res.check("no bump acknowledged while the disk is full (%d bytes "
                   "filler; %d acks before, %d after 2 s)" % (
                       filled, before, during), during == before)
        log = crd.log_text()
        res.check("coordinator logged the refusal with its reason",
                   "store full" in log and "disk full" in log,
                   log.splitlines()[-3:])
        # Now the last byte too: nothing changes (nothing is written).
        fill(filler + "2")
        time.sleep(1.0)
        res.check("disk 100%% full: still no ack, coordinator up (%d free)"
                   % free_bytes(mnt), len(st.acks()[0]) == during and
                   crd.proc.poll() is None)
        os.unlink(filler + "2")

        # 2. Space back, no restart.
        os.unlink(filler)
        res.check("bumps succeed again without a restart (within 10 s)",
                   wait_for(lambda: len(st.acks()[0]) > during + 100, 10),
                   crd.log_text().splitlines()[-3:])
        res.check("coordinator still the same process",
                   crd.proc is not None and crd.proc.poll() is None)
        st.stop()
        codes = storm_codes(st)
        print("     storm errors by code: %s" % codes)
        res.check("failed bumps said RESOURCE_EXHAUSTED",
                   codes.get("RESOURCE_EXHAUSTED", 0) > 0 and
                   "OK" not in codes, codes)
        acks, _ = st.acks()

        # 3. Restart: every ack is there.
        crd.stop(hard=True)
        crd.start()
        _, _, versions = faults_lib.snapshot_retry(args.storm_bin,
                                                   crd.target)
        lost = faults_lib.lost_acks(acks, versions)
        res.check("after a restart every acknowledged bump is there (%d "
                   "acks)" % len(acks), not lost, lost[:5])
        res.check("acks per client thread and slot grow",
                   not faults_lib.non_monotonic(acks))

        # 4. Start on a full disk.
        crd.stop(hard=True)
        fill(filler)
        log_start = len(crd.log_text())
        try:
            crd.start()
            started = True
        except RuntimeError:
            started = False
        code = crd.proc.returncode if crd.proc is not None else None
        errors = [l for l in crd.log_text()[log_start:].splitlines()
                  if "level=error" in l]
        if started:
            crd.stop(hard=True)
        else:
            crd.forget()
        res.check("start on a full disk fails (exit %s)" % code,
                   not started and code == 1)
        res.check("one error line naming the data dir",
                   len(errors) == 1 and crd.data_dir in errors[0], errors)
        if errors:
            print("     " + errors[0][:300])
        os.unlink(filler)
        crd.start()
        _, _, again = faults_lib.snapshot_retry(args.storm_bin, crd.target)
        res.check("next start with space works; acks still there",
                   not faults_lib.lost_acks(acks, again))
        crd.stop()
    finally:
        if crd is not None and crd.proc is not None:
            crd.stop(hard=True)
        if mounted:
            subprocess.call(["umount", mnt])
        shutil.rmtree(work, ignore_errors=True)
    return res.finish()


if __name__ == "__main__":
    faults_lib.install_signal_handlers()
    sys.exit(main())
