// `coherefs-table slot PATH` as a subprocess against an in-process
// coordinator (real gRPC over loopback, core on the in-memory store): the
// slot printed is the one the coordinator has for the file's key, the key
// is name_to_handle_at's (the agent's PassthroughFs::FileKey format, whose
// own test compares it with name_to_handle_at), and errors exit 1 / 2.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "client/coordinator_client.h"
#include "grpcpp/grpcpp.h"
#include "client/cli_test_util.h"
#include "gtest/gtest.h"
#include "server/coherence_core.h"
#include "server/coordinator_service.h"
#include "server/memory_store.h"

namespace coherefs::client {
namespace {

using testing::CliResult;
using testing::RunTool;
using testing::Runfile;
using Result = CliResult;

// The key written out independently of common/file_key.cc.
std::string KeyOf(const std::string& path) {
  union {
    struct file_handle fh;
    char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  } buf;
  buf.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), &buf.fh, &mount_id, 0) != 0) return "";
  std::string key(4, '\0');
  const uint32_t type = buf.fh.handle_type;
  std::memcpy(key.data(), &type, 4);  // x86: little-endian, as the format says
  key.append(reinterpret_cast<char*>(buf.fh.f_handle), buf.fh.handle_bytes);
  return key;
}

std::string Hex(const std::string& bytes) {
  std::string out;
  char b[3];
  for (unsigned char c : bytes) {
    std::snprintf(b, sizeof(b), "%02x", c);
    out += b;
  }
  return out;
}

class SlotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto core = server::CoherenceCore::Start(&store_, {}, nullptr);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    service_ = std::make_unique<server::CoordinatorService>(core_.get(), nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    target_ = "127.0.0.1:" + std::to_string(port);
    client_ = CoordinatorClient::Create(target_);
    ASSERT_TRUE(client_->CreateVolume("vol", 64).ok());
    std::string tmpl = std::string(std::getenv("TEST_TMPDIR")) + "/tree.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    core_->Stop();
    server_->Shutdown();
  }

  std::string MakeFile(const std::string& name) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p) << "x";
    return p;
  }
  // The coordinator's slot for path's key (allocates like the tool does).
  uint32_t SlotOf(const std::string& path) {
    auto r = client_->Resolve("vol", {KeyOf(path)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->slots(0).slot() : UINT32_MAX;
  }
  Result Slot(const std::string& args) {
    return RunTool("coherefs-table", "--coordinator " + target_ + " --volume vol " + args);
  }

  server::MemoryStore store_;
  std::unique_ptr<server::CoherenceCore> core_;
  std::unique_ptr<server::CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
  std::unique_ptr<CoordinatorClient> client_;
  std::string dir_;
};

TEST_F(SlotTest, PrintsTheSlotOfTheFilesKey) {
  const std::string a = MakeFile("a"), b = MakeFile("b");
  // Resolve b first so the tool's allocation for a is not trivially slot 0.
  const uint32_t slot_b = SlotOf(b);
  Result r = Slot("slot " + a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const uint32_t slot_a = SlotOf(a);  // already allocated by the tool
  EXPECT_NE(slot_a, slot_b);
  EXPECT_EQ(r.out, std::to_string(slot_a) + "\n");
  r = Slot("slot " + b);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(slot_b) + "\n");
}

TEST_F(SlotTest, JsonHasKeySlotAndCommittedVersion) {
  const std::string a = MakeFile("a");
  const uint32_t slot = SlotOf(a);
  auto bumped = client_->Bump("vol", {slot});
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  bumped = client_->Bump("vol", {slot});
  ASSERT_TRUE(bumped.ok()) << bumped.status();
  const uint64_t version = bumped->versions(0);
  Result r = Slot("--json slot " + a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"path\":\"" + a + "\",\"key\":\"" + Hex(KeyOf(a)) +
                       "\",\"slot\":" + std::to_string(slot) +
                       ",\"version\":" + std::to_string(version) + "}\n");
}

TEST_F(SlotTest, FollowsTheInodeNotTheName) {
  const std::string a = MakeFile("a");
  Result before = Slot("slot " + a);
  ASSERT_EQ(before.exit_code, 0) << before.err;
  // Rename and a hard link: same inode, same key, same slot.
  const std::string moved = dir_ + "/moved", link = dir_ + "/hard";
  ASSERT_EQ(rename(a.c_str(), moved.c_str()), 0);
  ASSERT_EQ(::link(moved.c_str(), link.c_str()), 0);
  EXPECT_EQ(Slot("slot " + moved).out, before.out);
  EXPECT_EQ(Slot("slot " + link).out, before.out);
  // A new file under the old name is another inode: another slot.
  MakeFile("a");
  Result again = Slot("slot " + a);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out, before.out);
  // A symlink is keyed as itself (not followed), like lstat.
  const std::string sym = dir_ + "/sym";
  ASSERT_EQ(symlink("moved", sym.c_str()), 0);
  Result s = Slot("slot " + sym);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_NE(s.out, before.out);
  EXPECT_EQ(s.out, std::to_string(SlotOf(sym)) + "\n");
}

TEST_F(SlotTest, Errors) {
  Result r = Slot("slot " + dir_ + "/missing");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("name_to_handle_at " + dir_ + "/missing: No such file"),
            std::string::npos)
      << r.err;
  const std::string a = MakeFile("a");
  r = RunTool("coherefs-table",
              "--coordinator " + target_ + " --volume nosuch --json slot " + a);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "{\"error\":\"NOT_FOUND\"}\n");
  // Nothing listens on port 1 of loopback (privileged, unused here).
  r = RunTool("coherefs-table", "--coordinator 127.0.0.1:1 --json slot " + a);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "{\"error\":\"UNAVAILABLE\"}\n");
}

TEST_F(SlotTest, UsageErrors) {
  const std::string a = MakeFile("a");
  EXPECT_EQ(RunTool("coherefs-table", "slot " + a).exit_code, 2);  // no --coordinator
  EXPECT_EQ(Slot("slot").exit_code, 2);
  EXPECT_EQ(Slot("slot " + a + " " + a).exit_code, 2);
  EXPECT_EQ(Slot("--path /dev/null slot " + a).exit_code, 2);
  EXPECT_EQ(RunTool("coherefs-table", "--coordinator").exit_code, 2);
  // The guest build has no gRPC and says so.
  Result r = RunTool("coherefs-table-static", "--coordinator " + target_ + " slot " + a);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("slot needs the host build (coherefs-table)"), std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace coherefs::client
