// Replays every file of fuzz_corpus/ through the fuzz harness, so `bazel
// test` keeps the seeds and every input the fuzzer once found interesting
// passing.
#include <dirent.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/fuse/fuzz_harness.h"
#include "gtest/gtest.h"

namespace coherefs::agent::fuse {
namespace {

constexpr char kCorpusDir[] = "agent/fuse/fuzz_corpus";

std::vector<std::string> CorpusFiles() {
  std::vector<std::string> files;
  DIR* d = ::opendir(kCorpusDir);
  if (d == nullptr) return files;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') files.push_back(std::string(kCorpusDir) + "/" + e->d_name);
  }
  ::closedir(d);
  return files;
}

TEST(ServerFuzzCorpusTest, EverySeedKeepsTheInvariants) {
  std::vector<std::string> files = CorpusFiles();
  // make_fuzz_corpus.py writes one seed per opcode the server handles.
  ASSERT_GE(files.size(), 45u);
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string data = bytes.str();
    EXPECT_EQ(FuzzOne(reinterpret_cast<const uint8_t*>(data.data()), data.size()), "")
        << path;
  }
}

}  // namespace
}  // namespace coherefs::agent::fuse
