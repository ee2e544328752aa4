#!/usr/bin/env python3
"""Prints test counts after `bazel test`: per target, and per test case.

Usage: count_tests.py BAZEL_TESTLOGS_DIR BAZEL_OUTPUT_LOG

Test cases come from the JUnit XML each test wrote in this run (gtest writes
one per binary; Bazel writes one with a single case for script tests).
Targets that failed to build or timed out count as failed. The last line is
`N passed, N failed` over test cases.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

STATUS_RE = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD|SKIPPED)\b")


def target_results(log_path):
    results = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            m = STATUS_RE.match(line.strip())
            if m:
                results[m.group(1)] = m.group(2)
    return results


def xml_for(testlogs, target):
    pkg, _, name = target[2:].partition(":")
    return os.path.join(testlogs, pkg, name, "test.xml")


def case_counts(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None or case.get("status") == "notrun":
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main():
    testlogs, log_path = sys.argv[1], sys.argv[2]
    results = target_results(log_path)
    passed = failed = skipped = 0
    t_pass = sum(1 for s in results.values() if s in ("PASSED", "FLAKY"))
    t_fail = len(results) - t_pass
    for target, status in sorted(results.items()):
        counts = case_counts(xml_for(testlogs, target)) if status in ("PASSED", "FLAKY", "FAILED") else None
        if counts is None:
            if status in ("PASSED", "FLAKY"):
                passed += 1
            else:
                failed += 1
            continue
        p, f, s = counts
        if status == "FAILED" and f == 0:
            f = 1  # crashed or exited non-zero after its last case
        passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"test targets: {t_pass} passed, {t_fail} failed")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")


if __name__ == "__main__":
    main()
