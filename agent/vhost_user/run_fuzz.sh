#!/bin/sh
# Fuzzes the vhost-user message parser and the virtqueue chain walker with
# libFuzzer + ASan/UBSan (clang from scripts/install-deps.sh), SECONDS
# (default 60) each. Seeds come from fuzz_corpus/ (messages) and
# vring_fuzz_corpus/ (rings) and are not
# modified; new inputs go to scratch corpora under a temp dir printed at the
# end. A crash leaves its input there and makes this script exit non-zero.
#   agent/vhost_user/run_fuzz.sh 60
set -eu
SECONDS_TO_RUN="${1:-60}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SRC="$ROOT/agent/vhost_user"
WORK="${FUZZ_WORK:-$(mktemp -d /tmp/vhost-fuzz.XXXXXX)}"
mkdir -p "$WORK"
ABSL_LIBS="$(pkg-config --libs absl_status absl_statusor absl_strings \
  absl_str_format absl_synchronization absl_time)"
CXX="clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I$ROOT"

$CXX "$SRC/message_fuzzer.cc" "$SRC/message.cc" "$ROOT/common/errno_status.cc" \
  $ABSL_LIBS -o "$WORK/message_fuzzer"
$CXX "$SRC/vring_fuzzer.cc" "$SRC/vring.cc" "$SRC/guest_memory.cc" \
  "$ROOT/common/errno_status.cc" $ABSL_LIBS -o "$WORK/vring_fuzzer"

mkdir -p "$WORK/message_corpus" "$WORK/vring_corpus"
cd "$WORK"
./message_fuzzer -max_total_time="$SECONDS_TO_RUN" -timeout=5 -print_final_stats=1 \
  -artifact_prefix="$WORK/message-" "$WORK/message_corpus" "$SRC/fuzz_corpus"
./vring_fuzzer -max_total_time="$SECONDS_TO_RUN" -timeout=5 -max_len=16384 -print_final_stats=1 \
  -artifact_prefix="$WORK/vring-" "$WORK/vring_corpus" "$SRC/vring_fuzz_corpus"
echo "fuzzing done: $WORK (message corpus $(ls "$WORK/message_corpus" | wc -l)," \
  "vring corpus $(ls "$WORK/vring_corpus" | wc -l) inputs)"
