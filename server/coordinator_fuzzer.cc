// libFuzzer target for the coordinator's request handling over the memory
// store: see coordinator_fuzz_harness.h for the input format and the
// invariants checked. Built outside Bazel by server/run_fuzz.sh and
// scripts/fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/coordinator_fuzz_ballast.h"
#include "server/coordinator_fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  coherefs::server::CoordinatorFuzzOptions options;
  options.store = coherefs::server::FuzzStoreKind::kMemory;
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
