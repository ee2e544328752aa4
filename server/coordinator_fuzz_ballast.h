// Allocation ballast for the coordinator libFuzzer targets (only there: it
// needs clang's sanitizer hooks).
//
// The coordinator harness keeps a store and a core across inputs (see
// coordinator_fuzz_harness.h), so most inputs leave more allocations than
// they free, on purpose. libFuzzer's -detect_leaks=1 then re-runs every
// such input and scans the heap (about a second each on a loaded machine)
// until it gives up after 1000 inputs. RunBalanced keeps the count of
// mallocs at or below the count of frees for each input by freeing blocks
// set aside earlier, and sets a block aside for each net free (an input
// that retires a world frees what earlier inputs kept), so the ballast
// follows the harness's state up and down; only growth past it needs a
// refill (2^18 blocks, which makes that one input look like growth).
// Leaks are still found: LeakSanitizer checks the whole process at exit,
// and the per-input check still runs whenever an input allocates more
// than the ballast left can cover.
#ifndef COHEREFS_SERVER_COORDINATOR_FUZZ_BALLAST_H_
#define COHEREFS_SERVER_COORDINATOR_FUZZ_BALLAST_H_

#include <sanitizer/allocator_interface.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace coherefs::server {

inline std::atomic<int64_t> g_fuzz_mallocs{0};
inline std::atomic<int64_t> g_fuzz_frees{0};

class FuzzBallast {
 public:
  FuzzBallast() {
    __sanitizer_install_malloc_and_free_hooks(
        [](const volatile void*, size_t) {
          g_fuzz_mallocs.fetch_add(1, std::memory_order_relaxed);
        },
        [](const volatile void*) {
          g_fuzz_frees.fetch_add(1, std::memory_order_relaxed);
        });
  }

  template <typename F>
  auto RunBalanced(F f) {
    const int64_t m0 = g_fuzz_mallocs.load();
    const int64_t f0 = g_fuzz_frees.load();
    auto result = f();
    const int64_t net =
        (g_fuzz_mallocs.load() - m0) - (g_fuzz_frees.load() - f0);
    if (net > 0) {
      if (blocks_.size() < static_cast<size_t>(net)) {
        // This input now grows the heap: libFuzzer checks it once.
        const size_t add = std::max<size_t>(net, size_t{1} << 18);
        blocks_.reserve(blocks_.size() + add);
        for (size_t i = 0; i < add; ++i) blocks_.push_back(std::malloc(16));
      }
      for (int64_t i = 0; i < net; ++i) {
        std::free(blocks_.back());
        blocks_.pop_back();
      }
    } else if (net < 0 && blocks_.size() < kMaxBlocks) {
      // Mallocs up to the frees: the input still looks balanced.
      const size_t add = std::min<size_t>(-net, kMaxBlocks - blocks_.size());
      blocks_.reserve(blocks_.size() + add);
      for (size_t i = 0; i < add; ++i) blocks_.push_back(std::malloc(16));
    }
    return result;
  }

 private:
  static constexpr size_t kMaxBlocks = size_t{1} << 20;
  std::vector<void*> blocks_;
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_COORDINATOR_FUZZ_BALLAST_H_
