// libFuzzer target for the coordinator's request handling over a real
// RocksDB store: a fresh database per input under $COHEREFS_FUZZ_DB_DIR
// (default $TMPDIR, else /tmp; /dev/shm makes it much faster), reopened from
// disk by every Restart op. See coordinator_fuzz_harness.h. Built outside
// Bazel by server/run_fuzz.sh and scripts/fuzz.sh.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/coordinator_fuzz_ballast.h"
#include "server/coordinator_fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  coherefs::server::CoordinatorFuzzOptions options;
  options.store = coherefs::server::FuzzStoreKind::kRocksDb;
  if (const char* dir = std::getenv("COHEREFS_FUZZ_DB_DIR")) {
    options.scratch_dir = dir;
  }
  // See coordinator_fuzz_ballast.h: the harness keeps state across inputs.
  static auto* ballast = new coherefs::server::FuzzBallast();
  std::string failure = ballast->RunBalanced([&] {
    return coherefs::server::FuzzCoordinatorOne(data, size, options);
  });
  if (!failure.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
