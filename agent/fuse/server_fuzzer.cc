// libFuzzer target for the FUSE request decoder: see fuzz_harness.h for the
// input format and the invariants checked. Built outside Bazel by
// run_fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/fuse/fuzz_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string failure = coherefs::agent::fuse::FuzzOne(data, size);
  if (!failure.empty()) {
    std::fprintf(stderr, "invariant broken: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
