#!/usr/bin/env bash
# Builds the FUSE decoder fuzzer (server_fuzzer.cc) with clang's libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, outside Bazel, and runs
# it for SECONDS (default 60) on 2 workers' worth of time in one process.
#
#   agent/fuse/run_fuzz.sh [SECONDS]
#
# The seeds in agent/fuse/fuzz_corpus/ are read but never written: new
# inputs go to $FUZZ_WORK/corpus (default /tmp/coherefs_fuse_fuzz), crashes
# to $FUZZ_WORK/crash-*. To keep an interesting input, copy it into
# fuzz_corpus/ so server_fuzz_corpus_test replays it under `bazel test`.
set -euo pipefail

seconds="${1:-60}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="${FUZZ_WORK:-/tmp/coherefs_fuse_fuzz}"
cxx="${CXX_FUZZ:-clang++-14}"
mkdir -p "$work/corpus"

absl_mods="absl_status absl_statusor absl_strings absl_str_format absl_synchronization
           absl_time absl_cord"
# shellcheck disable=SC2086
flags="$(pkg-config --cflags --libs $absl_mods)"

echo "run_fuzz: building $work/server_fuzzer with $cxx"
# shellcheck disable=SC2086
"$cxx" -std=c++17 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$repo" \
  "$repo/agent/fuse/server_fuzzer.cc" \
  "$repo/agent/fuse/fuzz_harness.cc" \
  "$repo/agent/fuse/server.cc" \
  "$repo/agent/fuse/op_stats.cc" \
  "$repo/agent/fuse/fake_file_system.cc" \
  "$repo/common/iov.cc" \
  "$repo/common/errno_status.cc" \
  "$repo/common/log.cc" \
  $flags -o "$work/server_fuzzer"

echo "run_fuzz: fuzzing for ${seconds}s"
cd "$work"
"$work/server_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -max_len=8192 -print_final_stats=1 "$work/corpus" "$repo/agent/fuse/fuzz_corpus"
