# Shared by every fuzz command (scripts/fuzz.sh, agent/fuse/run_fuzz.sh,
# agent/vhost_user/run_fuzz.sh, server/run_fuzz.sh, fuzz_smoke_test.sh):
# the list of libFuzzer targets, how to build one with clang (libFuzzer +
# AddressSanitizer + UndefinedBehaviorSanitizer, outside Bazel, since
# Debian's Bazel 4 has no libFuzzer toolchain) and how to run one.
#
# Source it with FUZZ_REPO set to the repository root, then:
#   fuzz_build NAME WORK        builds WORK/NAME (objects shared in WORK/obj)
#   fuzz_run NAME WORK ARGS...  runs it on its seeds plus WORK/NAME.corpus
#                               (seeds are read, never written); sets
#                               FUZZ_EXECS and FUZZ_SECONDS, returns the
#                               fuzzer's status (non-zero: crash, leak,
#                               sanitizer report, timeout or broken
#                               invariant; the input is WORK/NAME-crash-*).
# A target's sources are found by following its entry file's #include
# "x/y.h" lines: every x/y.cc that exists is compiled, so a new dependency
# needs no edit here.
# Environment: CXX_FUZZ (default clang++-14, else clang++).

FUZZ_TARGETS="fuse_server vhost_message vhost_vring coordinator coordinator_rocksdb"

# Sets FT_ENTRY, FT_SEEDS (directories, repo-relative), FT_LIBS, FT_FLAGS.
fuzz_target() {
  FT_LIBS=""
  FT_FLAGS=""
  case "$1" in
    fuse_server)
      FT_ENTRY=agent/fuse/server_fuzzer.cc
      FT_SEEDS=agent/fuse/fuzz_corpus
      FT_FLAGS="-max_len=8192" ;;
    vhost_message)
      FT_ENTRY=agent/vhost_user/message_fuzzer.cc
      FT_SEEDS=agent/vhost_user/fuzz_corpus ;;
    vhost_vring)
      FT_ENTRY=agent/vhost_user/vring_fuzzer.cc
      FT_SEEDS=agent/vhost_user/vring_fuzz_corpus
      FT_FLAGS="-max_len=16384" ;;
    coordinator)
      FT_ENTRY=server/coordinator_fuzzer.cc
      FT_SEEDS=server/fuzz_corpus
      FT_LIBS="-lrocksdb"
      # -reload=0: one process per corpus; re-listing it every second
      # cost a few percent.
      FT_FLAGS="-max_len=1024 -reload=0" ;;
    coordinator_rocksdb)
      FT_ENTRY=server/coordinator_rocksdb_fuzzer.cc
      FT_SEEDS=server/fuzz_corpus
      FT_LIBS="-lrocksdb"
      # A restart op closes and reopens RocksDB: seconds on a loaded machine.
      FT_FLAGS="-max_len=1024 -timeout=90 -reload=0" ;;
    *)
      echo "fuzz_lib: unknown target $1 (known: $FUZZ_TARGETS)" >&2
      return 2 ;;
  esac
}

fuzz_cxx() {
  if [ -n "${CXX_FUZZ:-}" ]; then echo "$CXX_FUZZ"
  elif command -v clang++-14 >/dev/null; then echo clang++-14
  else echo clang++; fi
}

# The .cc files an entry file needs: the transitive closure of its quoted
# includes that have a .cc beside them.
fuzz_sources() {
  local queue=("$1") seen=" " f inc
  while [ "${#queue[@]}" -gt 0 ]; do
    f="${queue[0]}"
    queue=("${queue[@]:1}")
    case "$seen" in *" $f "*) continue ;; esac
    seen="$seen$f "
    case "$f" in *.cc) echo "$f" ;; esac
    for inc in $(sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$FUZZ_REPO/$f"); do
      [ -f "$FUZZ_REPO/$inc.h" ] && queue+=("$inc.h")
      [ -f "$FUZZ_REPO/$inc.cc" ] && queue+=("$inc.cc")
    done
  done
}

FUZZ_ABSL_MODS="absl_status absl_statusor absl_strings absl_str_format
  absl_synchronization absl_time absl_cord absl_flat_hash_map
  absl_flat_hash_set absl_hash absl_random_random"

fuzz_build() {
  local name="$1" work="$2" cxx src obj objs=() pids=() failed=0 i
  fuzz_target "$name" || return 2
  cxx="$(fuzz_cxx)"
  mkdir -p "$work/obj"
  # coverage_ignore.txt: no coverage feedback from std:: and absl::
  # templates (sanitizers still check them); see that file.
  local cflags="-std=c++17 -g -O1 -fno-omit-frame-pointer
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
    -fsanitize-coverage-ignorelist=$FUZZ_REPO/tests/fuzz/coverage_ignore.txt
    -I$FUZZ_REPO $(pkg-config --cflags $FUZZ_ABSL_MODS)"
  for src in $(fuzz_sources "$FT_ENTRY"); do
    obj="$work/obj/$(echo "$src" | tr / _).o"
    objs+=("$obj")
    # Objects are shared by the targets of one work directory; a build
    # started in a fresh directory compiles everything (headers change too).
    [ -f "$obj" ] && continue
    # shellcheck disable=SC2086
    ("$cxx" $cflags -c "$FUZZ_REPO/$src" -o "$obj.tmp" && mv "$obj.tmp" "$obj") \
      >"$obj.log" 2>&1 &
    pids+=($!)
    # Two compilers at a time: the machine is shared.
    if [ "${#pids[@]}" -ge "${FUZZ_BUILD_JOBS:-2}" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  for obj in "${objs[@]}"; do
    [ -f "$obj" ] || { failed=1; cat "$obj.log" >&2; }
  done
  [ "$failed" -eq 0 ] || { echo "fuzz_build: $name failed to compile" >&2; return 1; }
  # shellcheck disable=SC2086
  "$cxx" -fsanitize=fuzzer,address,undefined "${objs[@]}" \
    $(pkg-config --libs $FUZZ_ABSL_MODS) $FT_LIBS -o "$work/$name"
}

fuzz_run() {
  local name="$1" work="$2" rc start seeds=() s
  shift 2
  fuzz_target "$name" || return 2
  for s in $FT_SEEDS; do seeds+=("$FUZZ_REPO/$s"); done
  mkdir -p "$work/$name.corpus"
  start=$(date +%s)
  # lsan.supp: glibc-internal allocations LeakSanitizer misreports.
  # shellcheck disable=SC2086
  (cd "$work" &&
    LSAN_OPTIONS="suppressions=$FUZZ_REPO/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
    "./$name" -detect_leaks=1 -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/$name-" $FT_FLAGS "$@" \
    "$work/$name.corpus" "${seeds[@]}") >"$work/$name.log" 2>&1
  rc=$?
  FUZZ_SECONDS=$(($(date +%s) - start))
  FUZZ_EXECS=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' \
    "$work/$name.log" | awk '{s+=$2} END {print s+0}')
  return "$rc"
}

# Builds every named target, then runs each with ARGS (one string, e.g.
# "-runs=1000000" or "-max_total_time=60"), FUZZ_PARALLEL (default 1) at a
# time, printing per target
#   PASS name: N executions in S s
# or FAIL with the log's tail, and finally "N passed, N failed". Returns
# the number of failures (0: all passed).
#   fuzz_build_and_run WORK "ARGS" TARGET...
fuzz_build_and_run() {
  local work="$1" args="$2" name passed=0 failed=0 running=()
  shift 2
  mkdir -p "$work"
  rm -f "$work"/*.result
  for name in "$@"; do
    echo "fuzz: building $name" >&2
    fuzz_build "$name" "$work" ||
      echo "FAIL $name: build failed" >"$work/$name.result"
  done
  # The RocksDB target writes a database per world; keep it in the work dir
  # unless told otherwise (tmpfs is faster).
  export COHEREFS_FUZZ_DB_DIR="${COHEREFS_FUZZ_DB_DIR:-$work}"
  for name in "$@"; do
    [ -e "$work/$name.result" ] && continue
    (
      # shellcheck disable=SC2086
      if fuzz_run "$name" "$work" $args; then
        echo "PASS $name: $FUZZ_EXECS executions in ${FUZZ_SECONDS} s"
      else
        echo "FAIL $name: $FUZZ_EXECS executions in ${FUZZ_SECONDS} s; log $work/$name.log"
        grep -v -E '^#[0-9]+|NEW_FUNC' "$work/$name.log" | tail -40
      fi >"$work/$name.result.tmp"
      mv "$work/$name.result.tmp" "$work/$name.result"
    ) &
    running+=($!)
    if [ "${#running[@]}" -ge "${FUZZ_PARALLEL:-1}" ]; then
      wait "${running[0]}" || true
      running=("${running[@]:1}")
    fi
  done
  for name in "${running[@]}"; do wait "$name" || true; done
  for name in "$@"; do
    cat "$work/$name.result"
    if head -1 "$work/$name.result" | grep -q '^PASS'; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
  echo "$passed passed, $failed failed"
  return "$failed"
}
