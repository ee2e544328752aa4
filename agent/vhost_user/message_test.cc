// Unit tests of the vhost-user framing and decoding, plus every fuzz seed
// run through the fuzz target's function so `bazel test` covers them.
#include "agent/vhost_user/message.h"

#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace coherefs::agent::vhost_user {
namespace {

Message Make(RequestType type, std::string payload, size_t fds = 0,
             uint32_t flags = kVersion) {
  Message m;
  m.header = {static_cast<uint32_t>(type), flags,
              static_cast<uint32_t>(payload.size())};
  m.payload = std::move(payload);
  for (size_t i = 0; i < fds; ++i) m.fds.emplace_back(::dup(0));
  return m;
}

std::string U64(uint64_t v) { return std::string(reinterpret_cast<char*>(&v), 8); }

std::string Table(uint32_t n, MemoryRegion r) {
  uint32_t hdr[2] = {n, 0};
  std::string p(reinterpret_cast<char*>(hdr), 8);
  for (uint32_t i = 0; i < n; ++i) {
    MemoryRegion ri = r;
    ri.guest_phys_addr += i * r.memory_size;
    p.append(reinterpret_cast<char*>(&ri), sizeof(ri));
  }
  return p;
}

absl::StatusCode Code(Message m) { return DecodeRequest(std::move(m)).status().code(); }

TEST(ParseHeaderTest, AcceptsVersionOneAndChecksTheRest) {
  Header h{1, kVersion | kFlagNeedReply, 8};
  auto ok = ParseHeader(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&h), 12));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size, 8u);
  Header v2{1, 2, 0};
  EXPECT_EQ(ParseHeader(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&v2), 12)).status().code(),
            absl::StatusCode::kDataLoss);
  Header reply{1, kVersion | kFlagReply, 0};
  EXPECT_EQ(ParseHeader(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&reply), 12)).status().code(),
            absl::StatusCode::kDataLoss);
  Header huge{1, kVersion, kMaxPayloadSize + 1};
  EXPECT_EQ(ParseHeader(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&huge), 12)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseHeader(absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&h), 11)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(DecodeRequestTest, SizesAndFdsPerRequest) {
  EXPECT_EQ(Code(Make(RequestType::kGetFeatures, "")), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kGetFeatures, "x")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetFeatures, U64(1))), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kSetFeatures, "1234")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetFeatures, U64(1), 1)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetVringNum, std::string(8, '\0'))), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kSetVringNum, std::string(12, '\0'))), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetVringAddr, std::string(40, '\0'))), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kSetVringAddr, std::string(32, '\0'))), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetVringKick, U64(0), 1)), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kSetVringKick, U64(0))), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetVringCall, U64(kVringNoFdMask))), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kSetVringCall, U64(kVringNoFdMask), 1)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetVringErr, U64(1u << 9), 1)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kResetOwner, U64(0))), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kSetLogBase, std::string(16, '\0'))), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Code(Make(RequestType::kSetLogFd, "", 1)), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Code(Make(static_cast<RequestType>(99), "")), absl::StatusCode::kUnimplemented);
}

TEST(DecodeRequestTest, MemoryTables) {
  MemoryRegion r{0x100000, 4096, 0x7f0000000000, 4096};
  auto two = DecodeRequest(Make(RequestType::kSetMemTable, Table(2, r), 2));
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->regions.size(), 2u);
  EXPECT_EQ(two->regions[1].guest_phys_addr, 0x101000u);
  EXPECT_EQ(two->fds.size(), 2u);
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, Table(2, r), 1)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, Table(9, r), 8)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, Table(0, r), 0)), absl::StatusCode::kInvalidArgument);
  std::string extra = Table(1, r) + "pad";
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, extra, 1)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, "1234", 0)), absl::StatusCode::kInvalidArgument);
  MemoryRegion wraps{~0ull - 100, 4096, 0, 0};
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, Table(1, wraps), 1)), absl::StatusCode::kInvalidArgument);
  MemoryRegion offset_wraps{0, 4096, 0, ~0ull - 1};
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, Table(1, offset_wraps), 1)), absl::StatusCode::kInvalidArgument);
  MemoryRegion empty{0, 0, 0, 0};
  EXPECT_EQ(Code(Make(RequestType::kSetMemTable, Table(1, empty), 1)), absl::StatusCode::kInvalidArgument);
}

TEST(DecodeRequestTest, Config) {
  ConfigHeader h{0, 4, 0};
  std::string p(reinterpret_cast<char*>(&h), sizeof(h));
  EXPECT_EQ(Code(Make(RequestType::kGetConfig, p + "abcd")), absl::StatusCode::kOk);
  EXPECT_EQ(Code(Make(RequestType::kGetConfig, p + "ab")), absl::StatusCode::kInvalidArgument);
  ConfigHeader big{0, kMaxConfigSize + 1, 0};
  EXPECT_EQ(Code(Make(RequestType::kGetConfig,
                      std::string(reinterpret_cast<char*>(&big), sizeof(big)))),
            absl::StatusCode::kInvalidArgument);
}

class ReadMessageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    if (fds_[0] >= 0) ::close(fds_[0]);
    if (fds_[1] >= 0) ::close(fds_[1]);
  }
  void SendWithFds(const std::string& bytes, const std::vector<int>& fds) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
      mh.msg_control = control.data();
      mh.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ASSERT_EQ(::sendmsg(fds_[1], &mh, 0), static_cast<ssize_t>(bytes.size()));
  }
  static std::string Bytes(Header h, const std::string& payload) {
    return std::string(reinterpret_cast<char*>(&h), sizeof(h)) + payload;
  }
  int fds_[2] = {-1, -1};
};

TEST_F(ReadMessageTest, ReadsHeaderPayloadAndFds) {
  SendWithFds(Bytes({12, kVersion, 8}, U64(3)), {0});
  auto m = ReadMessage(fds_[0]);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.request, 12u);
  EXPECT_EQ(m->payload, U64(3));
  ASSERT_EQ(m->fds.size(), 1u);
  EXPECT_TRUE(m->fds[0].valid());
}

TEST_F(ReadMessageTest, TooManyFdsIsDataLoss) {
  SendWithFds(Bytes({13, kVersion, 8}, U64(0)), std::vector<int>(kMaxFds + 1, 0));
  EXPECT_EQ(ReadMessage(fds_[0]).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ReadMessageTest, CleanCloseIsUnavailableShortPayloadDataLoss) {
  SendWithFds(Bytes({2, kVersion, 8}, "abc"), {});
  ::close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(ReadMessage(fds_[0]).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadMessage(fds_[0]).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ReadMessageTest, ReplyIsFramed) {
  ASSERT_TRUE(WriteReplyU64(fds_[1], RequestType::kGetFeatures, 42).ok());
  char buf[20];
  ASSERT_EQ(::recv(fds_[0], buf, sizeof(buf), MSG_WAITALL), 20);
  Header h;
  std::memcpy(&h, buf, 12);
  EXPECT_EQ(h.request, 1u);
  EXPECT_EQ(h.flags, kVersion | kFlagReply);
  EXPECT_EQ(h.size, 8u);
  uint64_t v;
  std::memcpy(&v, buf + 12, 8);
  EXPECT_EQ(v, 42u);
}

TEST(FuzzCorpusTest, EverySeedRunsThroughTheFuzzTarget) {
  std::string dir = std::string(std::getenv("TEST_SRCDIR") ? std::getenv("TEST_SRCDIR") : ".") +
                    "/coherefs/agent/vhost_user/fuzz_corpus";
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  int seeds = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string data = ss.str();
    EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()),
                                     data.size()),
              0)
        << e->d_name;
    ++seeds;
  }
  ::closedir(d);
  EXPECT_GE(seeds, 30);
}

}  // namespace
}  // namespace coherefs::agent::vhost_user
