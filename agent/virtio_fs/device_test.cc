// virtio-fs device over the real vhost-user back end and the test front
// end: FUSE-shaped requests on hiprio and request queues, with a fake
// RequestHandler that answers each request with its unique id and the
// payload reversed, so the test checks exact bytes per request.
#include "agent/virtio_fs/device.h"

#include <linux/fuse.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/vhost_user/protocol.h"
#include "agent/vhost_user/testing/frontend.h"
#include "gtest/gtest.h"

namespace coherefs::agent::virtio_fs {
namespace {

using vhost_user::testing::Frontend;
using vhost_user::testing::FrontendOptions;

struct HandlerStats {
  std::atomic<int> handlers{0};
  std::atomic<int> shutdowns{0};
  std::atomic<int> forgets{0};
  std::atomic<int> requests{0};
};

class FakeFuse : public fuse::RequestHandler {
 public:
  explicit FakeFuse(HandlerStats* stats) : stats_(stats) { ++stats_->handlers; }
  size_t HandleRequest(IovReader& in, IovWriter& out) override {
    fuse_in_header h;
    if (!in.ReadObj(&h)) return 0;
    if (h.opcode == FUSE_FORGET) {
      ++stats_->forgets;
      return 0;
    }
    ++stats_->requests;
    std::string body(in.remaining(), '\0');
    in.Read(body.data(), body.size());
    std::reverse(body.begin(), body.end());
    fuse_out_header oh{static_cast<uint32_t>(sizeof(oh) + body.size()), 0, h.unique};
    if (!out.WriteObj(oh) || !out.Write(body.data(), body.size())) return 0;
    return out.written();
  }
  void Shutdown() override { ++stats_->shutdowns; }

 private:
  HandlerStats* stats_;
};

class VirtioFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vfs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/fs.sock";
  }
  void TearDown() override {
    server_.reset();
    ::rmdir(dir_.c_str());
  }
  void StartServer(uint32_t request_queues, uint32_t pool) {
    DeviceOptions o;
    o.tag = "shared";
    o.num_request_queues = request_queues;
    o.thread_pool_size = pool;
    auto s = Server::Start(path_, o, [this] {
      return std::make_unique<FakeFuse>(&stats_);
    });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  std::unique_ptr<Frontend> Connect(uint32_t queues) {
    FrontendOptions fo;
    fo.num_queues = queues;
    fo.queue_size = 128;  // QEMU's vhost-user-fs-pci default queue-size
    auto fe = Frontend::Connect(path_, fo);
    EXPECT_TRUE(fe.ok()) << fe.status();
    if (!fe.ok()) return nullptr;
    absl::Status st = (*fe)->Negotiate();
    EXPECT_TRUE(st.ok()) << st;
    return st.ok() ? std::move(*fe) : nullptr;
  }
  // Posts a FUSE request (header in one buffer, body in another) with a
  // reply buffer of `reply_room` bytes split in two; returns head.
  uint16_t PostFuse(Frontend& fe, uint32_t q, uint32_t opcode, uint64_t unique,
                    const std::string& body, uint32_t reply_room,
                    uint64_t* reply_gpa) {
    fuse_in_header h{};
    h.len = sizeof(h) + body.size();
    h.opcode = opcode;
    h.unique = unique;
    uint64_t hg = fe.Alloc(sizeof(h));
    std::memcpy(fe.Host(hg), &h, sizeof(h));
    std::vector<vhost_user::testing::Segment> segs = {{hg, sizeof(h), false}};
    if (!body.empty()) {
      uint64_t bg = fe.Alloc(body.size());
      std::memcpy(fe.Host(bg), body.data(), body.size());
      segs.push_back({bg, static_cast<uint32_t>(body.size()), false});
    }
    if (reply_room > 0) {
      // One contiguous allocation described by two descriptors.
      *reply_gpa = fe.Alloc(reply_room);
      uint32_t first = std::min<uint32_t>(sizeof(fuse_out_header), reply_room);
      segs.push_back({*reply_gpa, first, true});
      if (reply_room > first) {
        segs.push_back({*reply_gpa + first, reply_room - first, true});
      }
    }
    auto head = fe.Post(q, segs, unique % 4 < 2);  // mix both kinds
    EXPECT_TRUE(head.ok()) << head.status();
    return head.ok() ? *head : 0;
  }

  std::string dir_;
  std::string path_;
  HandlerStats stats_;
  std::unique_ptr<Server> server_;
};

TEST(VirtioFsOptionsTest, Validation) {
  DeviceOptions o;
  EXPECT_EQ(ValidateOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.tag = std::string(kTagSize, 't');
  EXPECT_TRUE(ValidateOptions(o).ok());
  o.tag += "x";
  EXPECT_EQ(ValidateOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.tag = "t";
  o.num_request_queues = 0;
  EXPECT_EQ(ValidateOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.num_request_queues = 256;
  EXPECT_EQ(ValidateOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.num_request_queues = 255;
  o.thread_pool_size = 1025;
  EXPECT_EQ(ValidateOptions(o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Server::Start("/tmp/unused.sock", o, [] { return nullptr; })
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VirtioFsDeviceTest, ConfigSpaceAndQueues) {
  HandlerStats stats;
  DeviceOptions o;
  o.tag = "myfs";
  o.num_request_queues = 3;
  o.thread_pool_size = 5;
  VirtioFsDevice dev(o, std::make_unique<FakeFuse>(&stats));
  EXPECT_EQ(dev.NumQueues(), 4u);
  EXPECT_EQ(dev.WorkersForQueue(0), 0u);
  EXPECT_EQ(dev.WorkersForQueue(1), 5u);
  std::string config = dev.Config();
  ASSERT_EQ(config.size(), 40u);
  EXPECT_EQ(config.substr(0, 4), "myfs");
  EXPECT_EQ(config.substr(4, 32), std::string(32, '\0'));
  uint32_t n;
  std::memcpy(&n, config.data() + 36, 4);
  EXPECT_EQ(n, 3u);
  dev.Reset();
  dev.Reset();
  EXPECT_EQ(stats.shutdowns.load(), 1);
}

TEST_F(VirtioFsTest, RequestsOnEveryRequestQueueWithWorkersAndForgetOnHiprio) {
  StartServer(/*request_queues=*/2, /*pool=*/4);
  auto fe = Connect(3);
  ASSERT_NE(fe, nullptr);
  auto nq = fe->GetU64(vhost_user::RequestType::kGetQueueNum);
  ASSERT_TRUE(nq.ok());
  EXPECT_EQ(*nq, 3u);

  // FORGET on hiprio: no reply, used length 0.
  uint64_t unused = 0;
  uint16_t fh = PostFuse(*fe, 0, FUSE_FORGET, 7, std::string(8, '\1'), 0, &unused);
  fe->Kick(0);
  auto fu = fe->WaitUsed(0);
  ASSERT_TRUE(fu.ok()) << fu.status();
  EXPECT_EQ(fu->id, fh);
  EXPECT_EQ(fu->len, 0u);
  EXPECT_EQ(stats_.forgets.load(), 1);

  struct Want {
    std::string body;
    uint64_t reply_gpa;
  };
  std::map<uint64_t, Want> want;  // unique -> expected
  std::map<std::pair<uint32_t, uint16_t>, uint64_t> by_head;
  uint64_t unique = 100;
  for (int i = 0; i < 40; ++i) {
    for (uint32_t q = 1; q <= 2; ++q) {
      Want w;
      w.body = absl::StrCat("lookup-", q, "-", i, std::string(i * 7, 'z'));
      uint16_t head = PostFuse(*fe, q, FUSE_LOOKUP, unique, w.body,
                               sizeof(fuse_out_header) + 512, &w.reply_gpa);
      by_head[{q, head}] = unique;
      want[unique++] = w;
    }
  }
  fe->Kick(1);
  fe->Kick(2);
  for (int i = 0; i < 40; ++i) {
    for (uint32_t q = 1; q <= 2; ++q) {
      auto used = fe->WaitUsed(q);
      ASSERT_TRUE(used.ok()) << used.status();
      uint64_t u = by_head.at({q, static_cast<uint16_t>(used->id)});
      const Want& w = want.at(u);
      ASSERT_EQ(used->len, sizeof(fuse_out_header) + w.body.size());
      fuse_out_header oh;
      std::memcpy(&oh, fe->Host(w.reply_gpa), sizeof(oh));
      EXPECT_EQ(oh.unique, u);
      EXPECT_EQ(oh.error, 0);
      EXPECT_EQ(oh.len, used->len);
      std::string body(reinterpret_cast<char*>(fe->Host(w.reply_gpa)) + sizeof(oh),
                       w.body.size());
      std::string rev(w.body.rbegin(), w.body.rend());
      EXPECT_EQ(body, rev);
      by_head.erase({q, static_cast<uint16_t>(used->id)});
    }
  }
  EXPECT_TRUE(by_head.empty());
  EXPECT_EQ(stats_.requests.load(), 80);
  auto m = server_->Metrics();
  EXPECT_EQ(m.requests, 81u);  // 80 requests + the FORGET
  EXPECT_EQ(m.bad_chains, 0u);
}

TEST_F(VirtioFsTest, InlineServingWithZeroWorkers) {
  StartServer(1, 0);
  auto fe = Connect(2);
  ASSERT_NE(fe, nullptr);
  uint64_t reply = 0;
  uint16_t head = PostFuse(*fe, 1, FUSE_GETATTR, 42, "abc",
                           sizeof(fuse_out_header) + 3, &reply);
  fe->Kick(1);
  auto used = fe->WaitUsed(1);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(used->id, head);
  ASSERT_EQ(used->len, sizeof(fuse_out_header) + 3);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(fe->Host(reply)) + 16, 3), "cba");
}

TEST_F(VirtioFsTest, DisconnectShutsHandlerDownAndReconnectGetsANewOne) {
  StartServer(1, 2);
  {
    auto fe = Connect(2);
    ASSERT_NE(fe, nullptr);
    EXPECT_EQ(stats_.handlers.load(), 1);
    fe->Disconnect();
  }
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (stats_.shutdowns.load() < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(stats_.shutdowns.load(), 1);
  auto fe = Connect(2);
  ASSERT_NE(fe, nullptr);
  EXPECT_EQ(stats_.handlers.load(), 2);
  uint64_t reply = 0;
  PostFuse(*fe, 1, FUSE_GETATTR, 1, "x", 64, &reply);
  fe->Kick(1);
  ASSERT_TRUE(fe->WaitUsed(1).ok());
  server_->Stop();
  EXPECT_EQ(stats_.shutdowns.load(), 2);
  EXPECT_NE(::access(path_.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace coherefs::agent::virtio_fs
