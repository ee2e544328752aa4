// Replays every file of fuzz_corpus/ through the coordinator fuzz harness,
// over the memory store and over a real RocksDB in the test's temp dir, so
// `bazel test` keeps the seeds and every input the fuzzer once found
// interesting passing the coordinator contract.
#include <dirent.h>
#include <stdlib.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/coordinator_fuzz_harness.h"

namespace coherefs::server {
namespace {

constexpr char kCorpusDir[] = "server/fuzz_corpus";

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> files;
  DIR* d = ::opendir(kCorpusDir);
  if (d == nullptr) return files;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') {
      files.push_back(std::string(kCorpusDir) + "/" + e->d_name);
    }
  }
  ::closedir(d);
  return files;
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void ReplayAll(const CoordinatorFuzzOptions& options) {
  std::vector<std::string> files = CorpusFiles();
  // make_coordinator_fuzz_corpus.py writes 13 scenario seeds.
  ASSERT_GE(files.size(), 13u);
  for (const std::string& path : files) {
    const std::string data = Read(path);
    EXPECT_EQ(FuzzCoordinatorOne(reinterpret_cast<const uint8_t*>(data.data()),
                                 data.size(), options),
              "")
        << path;
  }
}

TEST(CoordinatorFuzzCorpusTest, EverySeedKeepsTheContractOnMemory) {
  CoordinatorFuzzOptions options;
  options.store = FuzzStoreKind::kMemory;
  ReplayAll(options);
}

TEST(CoordinatorFuzzCorpusTest, EverySeedKeepsTheContractOnRocksDb) {
  CoordinatorFuzzOptions options;
  options.store = FuzzStoreKind::kRocksDb;
  const char* tmp = getenv("TEST_TMPDIR");
  options.scratch_dir = tmp != nullptr ? tmp : "/tmp";
  ReplayAll(options);
}

}  // namespace
}  // namespace coherefs::server
