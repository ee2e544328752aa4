// Lookups per CPU-second through PassthroughFs with and without the node journal,
// median of 5 runs each, on real files (TEST_TMPDIR or /tmp):
//   warm: LOOKUP of a node the guest already holds + FORGET 1 (the journal
//         stores the count twice);
//   cold: LOOKUP of a new node + FORGET to zero (the journal takes the file
//         handle, adds and removes a record).
// Usage: journal_bench [iterations]   (default 200000)
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/passthrough/passthrough_fs.h"
#include "agent/passthrough/test_util.h"

namespace coherefs::agent::passthrough {
namespace {

constexpr int kFiles = 1000;
constexpr int kRuns = 5;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Lookups per second over `iterations`.
double Run(const std::string& share, bool journal, bool warm, int iterations) {
  UniqueFd memfd(memfd_create("journal_bench", MFD_CLOEXEC));
  Options o;
  o.shared_dir = share;
  if (journal) o.journal_fd = memfd.get();
  auto fs = PassthroughFs::Create(o);
  if (!fs.ok()) {
    fprintf(stderr, "create: %s\n", fs.status().ToString().c_str());
    exit(1);
  }
  std::vector<std::string> names;
  for (int i = 0; i < kFiles; ++i) names.push_back(absl::StrCat("f", i));
  if (warm) {
    for (const auto& n : names) (void)(*fs)->Lookup(testing::RootCtx(), fuse::kRootInode, n);
  }
  // Thread CPU time (user + system): the machine is shared, and wall time
  // would mostly measure the other processes.
  struct timespec t0, t1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  for (int i = 0; i < iterations; ++i) {
    auto e = (*fs)->Lookup(testing::RootCtx(), fuse::kRootInode, names[i % kFiles]);
    if (!e.ok()) {
      fprintf(stderr, "lookup: %s\n", e.status().ToString().c_str());
      exit(1);
    }
    (*fs)->Forget(e->inode, 1);
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  const double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  return iterations / s;
}

}  // namespace
}  // namespace coherefs::agent::passthrough

int main(int argc, char** argv) {
  using namespace coherefs::agent::passthrough;
  const int iterations = argc > 1 ? atoi(argv[1]) : 200000;
  testing::TempTree tree;
  for (int i = 0; i < kFiles; ++i) testing::WriteHostFile(tree.In(absl::StrCat("f", i)), "");
  printf("lookups/s, median of %d runs of %d lookups+forgets, %d files\n", kRuns, iterations,
         kFiles);
  printf("%-6s %14s %14s %8s\n", "case", "no journal", "journal", "ratio");
  for (bool warm : {true, false}) {
    std::vector<double> off, on;
    for (int r = 0; r < kRuns; ++r) {  // interleaved, so drift hits both alike
      off.push_back(Run(tree.share(), false, warm, iterations));
      on.push_back(Run(tree.share(), true, warm, iterations));
    }
    const double a = Median(off), b = Median(on);
    printf("%-6s %14.0f %14.0f %8.3f\n", warm ? "warm" : "cold", a, b, b / a);
  }
  return 0;
}
