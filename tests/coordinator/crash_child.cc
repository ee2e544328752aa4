// The child of crash_test: opens the coordinator's RocksDB store and core
// (as the coordinator does), then bumps from several threads forever and
// writes one line "seq slot version" to stdout for every acknowledged bump.
// The parent SIGKILLs it at random points. A line is written only after the
// bump's callback ran, i.e. after the store reported it durable.
//
//   crash_child DATA_DIR THREADS
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/coherence_core.h"
#include "server/rocksdb_store.h"

namespace {

constexpr char kVolume[] = "crash";
constexpr int kSlots = 16;

void WriteLine(const std::string& line) {
  // One write(2) of < PIPE_BUF bytes: lines from threads never interleave.
  if (write(1, line.data(), line.size()) != ssize_t(line.size())) _exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: crash_child DATA_DIR THREADS\n");
    return 2;
  }
  using namespace coherefs::server;
  auto store = RocksDbStore::Open(argv[1]);
  if (!store.ok()) {
    fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    return 1;
  }
  coherefs::SetLogLevel(coherefs::LogLevel::kError);
  auto core = CoherenceCore::Start(store->get(), CoreOptions(), nullptr);
  if (!core.ok()) {
    fprintf(stderr, "start: %s\n", core.status().ToString().c_str());
    return 1;
  }
  auto created = (*core)->CreateVolumeSync(kVolume, 64);
  if (!created.ok() &&
      created.status().code() != absl::StatusCode::kAlreadyExists) {
    fprintf(stderr, "create: %s\n", created.status().ToString().c_str());
    return 1;
  }
  std::vector<std::string> keys;
  for (int i = 0; i < kSlots; ++i) keys.push_back(absl::StrCat("key-", i));
  auto resolved = (*core)->ResolveSync(kVolume, keys);
  if (!resolved.ok()) {
    fprintf(stderr, "resolve: %s\n", resolved.status().ToString().c_str());
    return 1;
  }
  WriteLine(absl::StrCat("ready ", (*core)->epoch(), "\n"));

  const int threads = atoi(argv[2]);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(t + 1000 * (*core)->epoch());
      for (;;) {
        std::vector<uint32_t> slots = {uint32_t(rng() % kSlots)};
        if (rng() % 4 == 0) slots.push_back(uint32_t(rng() % kSlots));
        auto r = (*core)->BumpSync(kVolume, slots);
        if (!r.ok()) {
          fprintf(stderr, "bump: %s\n", r.status().ToString().c_str());
          _exit(1);
        }
        std::string lines;
        for (size_t i = 0; i < slots.size(); ++i) {
          absl::StrAppend(&lines, r->seqs[i], " ", slots[i], " ",
                          r->versions[i], "\n");
        }
        WriteLine(lines);
      }
    });
  }
  for (auto& w : workers) w.join();  // never: the parent kills us
  return 0;
}
