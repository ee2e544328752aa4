// Runs the coherefs-table binaries (dynamic and static) as subprocesses
// against a real VersionTable and checks exit codes and exact output.
#include <elf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "agent/coherence/version_table.h"
#include "client/cli_test_util.h"
#include "gtest/gtest.h"

namespace coherefs::client {
namespace {

using agent::coherence::VersionTable;

using testing::CliResult;
using testing::RunTool;
using testing::Runfile;
using Result = CliResult;

class ToolTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto table = VersionTable::Create("tool-test", 4);
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = std::move(table).value();
    path_ = "--path " + table_->ExportPath();
  }
  Result Tool(const std::string& args) { return RunTool(GetParam(), args); }

  std::unique_ptr<VersionTable> table_;
  std::string path_;
};

TEST_P(ToolTest, Get) {
  ASSERT_TRUE(table_->Raise(3, 42).ok());
  Result r = Tool(path_ + " get 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "42\n");
  r = Tool(path_ + " --json get 3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"slot\":3,\"version\":42}\n");
  r = Tool("--path=" + table_->ExportPath() + " get 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0\n");
}

TEST_P(ToolTest, GetOutOfRangeIsError) {
  Result r = Tool(path_ + " get 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "coherefs-table: slot 4 >= capacity 4\n");
  r = Tool(path_ + " --json get 4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out,
            "{\"error\":\"out_of_range\",\"message\":\"slot 4 >= capacity "
            "4\"}\n");
}

TEST_P(ToolTest, Info) {
  ASSERT_TRUE(table_->SetSyncState(2, 17, 3).ok());
  table_->SetFenced(false);
  const std::string p = table_->ExportPath();
  Result r = Tool(path_ + " info");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "path=" + p +
                       " layout_version=1 capacity=4 slots_used=3 epoch=2"
                       " committed_seq=17 fenced=0 generation=4"
                       " mapping_size=4096 mapped_bytes=4096\n");
  r = Tool(path_ + " --json info");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"path\":\"" + p +
                       "\",\"layout_version\":1,\"capacity\":4,"
                       "\"slots_used\":3,\"epoch\":2,\"committed_seq\":17,"
                       "\"fenced\":false,\"generation\":4,"
                       "\"mapping_size\":4096,\"mapped_bytes\":4096}\n");
}

TEST_P(ToolTest, WatchTimesOut) {
  ASSERT_TRUE(table_->Raise(1, 5).ok());
  Result r = Tool(path_ + " watch 1 --timeout-ms 50");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "coherefs-table: slot 1 still 5 after 50 ms\n");
  r = Tool(path_ + " --json watch 1 --timeout-ms=50");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out,
            "{\"slot\":1,\"old\":5,\"changed\":false,\"timeout_ms\":50}\n");
}

TEST_P(ToolTest, WatchSeesARaise) {
  // Raise by one every 20 ms while the tool runs: whenever it starts, it
  // sees some version v and then v + 1.
  std::atomic<bool> stop{false};
  std::thread raiser([&] {
    for (uint64_t v = 1; v < 1000 && !stop.load(); ++v) {
      ASSERT_TRUE(table_->Raise(2, v).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Result r = Tool(path_ + " --json watch 2 --timeout-ms 10000");
  stop.store(true);
  raiser.join();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  unsigned long long old_v = 0, new_v = 0, waited = 0;
  ASSERT_EQ(std::sscanf(r.out.c_str(),
                        "{\"slot\":2,\"old\":%llu,\"new\":%llu,"
                        "\"changed\":true,\"waited_us\":%llu}",
                        &old_v, &new_v, &waited),
            3)
      << r.out;
  EXPECT_EQ(new_v, old_v + 1);
}

TEST_P(ToolTest, UsageErrors) {
  EXPECT_EQ(Tool(path_).exit_code, 2);
  EXPECT_EQ(Tool(path_ + " get").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " get x").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " get -1").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " get 4294967296").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " info 1").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " frob").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " --bogus info").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " --pci auto info").exit_code, 2);
  EXPECT_EQ(Tool(path_ + " watch 1 --timeout-ms abc").exit_code, 2);
  Result r = Tool("--path");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("usage: coherefs-table"), std::string::npos) << r.err;
}

TEST_P(ToolTest, OpenErrors) {
  Result r = Tool("--path /nonexistent/table get 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "coherefs-table: open /nonexistent/table: No such file or "
            "directory\n");
  r = Tool("--json --path /proc/self/status info");
  EXPECT_EQ(r.exit_code, 1);
  // /proc files report size 0: too small for a header.
  EXPECT_EQ(r.out.rfind("{\"error\":\"too_small\"", 0), 0u) << r.out;
  r = Tool("--pci 0000:ff:1f.7 info");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "coherefs-table: no PCI device "
            "/sys/bus/pci/devices/0000:ff:1f.7\n");
}

INSTANTIATE_TEST_SUITE_P(Binaries, ToolTest,
                         ::testing::Values("coherefs-table",
                                           "coherefs-table-static"),
                         [](const auto& info) {
                           return info.param == "coherefs-table" ? "dynamic"
                                                                 : "static";
                         });

// The static variant has no program interpreter, so it runs in an
// initramfs without a dynamic loader.
TEST(StaticBinaryTest, HasNoInterpreter) {
  std::ifstream in(Runfile("coherefs-table-static"), std::ios::binary);
  ASSERT_TRUE(in);
  Elf64_Ehdr eh;
  ASSERT_TRUE(in.read(reinterpret_cast<char*>(&eh), sizeof(eh)));
  ASSERT_EQ(std::string(reinterpret_cast<char*>(eh.e_ident), 4), "\x7f" "ELF");
  int interp = 0, dynamic = 0;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    in.seekg(eh.e_phoff + i * eh.e_phentsize);
    ASSERT_TRUE(in.read(reinterpret_cast<char*>(&ph), sizeof(ph)));
    if (ph.p_type == PT_INTERP) ++interp;
    if (ph.p_type == PT_DYNAMIC) ++dynamic;
  }
  EXPECT_EQ(interp, 0);
  EXPECT_EQ(dynamic, 0);
}

}  // namespace
}  // namespace coherefs::client
