// Guest detail and eviction over the real pieces: a virtio-fs socket
// (virtio_fs::Server, real vhost-user back end) serving a real FUSE session
// over a temp directory, driven by the test vhost-user front end over the
// Unix socket (it plays QEMU), and the admin service over loopback gRPC.
// The session's handler holds GETATTR requests until the test lets them go,
// so a request is provably in flight when the queue depth is read and when
// the guest is evicted.
#include <linux/fuse.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/admin/admin_service.h"
#include "agent/fuse_session.h"
#include "agent/vhost_user/testing/frontend.h"
#include "agent/virtio_fs/device.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/coherefs/v1/agent_admin.grpc.pb.h"

namespace coherefs::agent::admin {
namespace {

using vhost_user::testing::Frontend;
using vhost_user::testing::FrontendOptions;
using vhost_user::testing::Segment;

constexpr uint32_t kRequestQueue = 1;

// Holds GETATTRs until released; everything else goes straight through.
struct Gate {
  absl::Mutex mu;
  bool open ABSL_GUARDED_BY(mu) = false;
  int held ABSL_GUARDED_BY(mu) = 0;
};

class GatedSession final : public fuse::RequestHandler {
 public:
  GatedSession(std::unique_ptr<fuse::RequestHandler> real, Gate* gate)
      : real_(std::move(real)), gate_(gate) {}
  size_t HandleRequest(IovReader& in, IovWriter& out) override {
    fuse_in_header h;
    IovReader peek = in;
    if (peek.ReadObj(&h) && h.opcode == FUSE_GETATTR) {
      absl::MutexLock lock(&gate_->mu);
      ++gate_->held;
      gate_->mu.Await(absl::Condition(&gate_->open));
    }
    return real_->HandleRequest(in, out);
  }
  void Shutdown() override { real_->Shutdown(); }
  fuse::NegotiatedInit Negotiated() const override { return real_->Negotiated(); }

 private:
  const std::unique_ptr<fuse::RequestHandler> real_;
  Gate* const gate_;
};

class GuestSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/guest-session-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/vm1.sock";
    virtio_fs::DeviceOptions device;
    device.tag = "vol";
    device.num_request_queues = 1;
    device.thread_pool_size = 2;
    passthrough::Options fs;
    fs.shared_dir = dir_;
    auto server = virtio_fs::Server::Start(socket_, device, [this, fs] {
      return std::make_unique<GatedSession>(NewFuseSession(fs, fuse::Server::Options()),
                                            &gate_);
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);

    AdminSources sources;
    virtio_fs::Server* raw = server_.get();
    sources.guests.push_back({"vm1", socket_, "vol", [raw] { return raw->Metrics(); }});
    sources.guests.back().cache = "auto";
    sources.guests.back().server = raw;
    auto admin = AdminServer::Start("127.0.0.1:0", std::move(sources));
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = std::move(*admin);
    stub_ = v1::AgentAdmin::NewStub(
        grpc::CreateChannel(admin_->address(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    {
      absl::MutexLock lock(&gate_.mu);
      gate_.open = true;
    }
    admin_.reset();
    server_.reset();
    ::unlink(socket_.c_str());
    ::rmdir(dir_.c_str());
  }

  v1::AgentGuestStatus Guest() {
    grpc::ClientContext ctx;
    v1::AgentStatus status;
    grpc::Status s = stub_->GetStatus(&ctx, v1::GetStatusRequest(), &status);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(status.guests_size(), 1);
    return status.guests_size() == 1 ? status.guests(0) : v1::AgentGuestStatus();
  }

  grpc::Status Evict(const std::string& name, v1::EvictGuestResponse* out) {
    grpc::ClientContext ctx;
    v1::EvictGuestRequest request;
    request.set_name(name);
    return stub_->EvictGuest(&ctx, request, out);
  }
  grpc::Status Admit(const std::string& name, v1::AdmitGuestResponse* out) {
    grpc::ClientContext ctx;
    v1::AdmitGuestRequest request;
    request.set_name(name);
    return stub_->AdmitGuest(&ctx, request, out);
  }

  std::unique_ptr<Frontend> Connect() {
    FrontendOptions options;
    options.num_queues = 2;
    options.queue_size = 128;
    auto fe = Frontend::Connect(socket_, options);
    EXPECT_TRUE(fe.ok()) << fe.status();
    return fe.ok() ? std::move(*fe) : nullptr;
  }

  // Posts a FUSE request on the request queue with room for the reply;
  // returns the reply's guest address.
  uint64_t PostFuse(Frontend& fe, uint32_t opcode, uint64_t unique, uint64_t nodeid,
                    const std::string& body) {
    fuse_in_header h{};
    h.len = sizeof(h) + body.size();
    h.opcode = opcode;
    h.unique = unique;
    h.nodeid = nodeid;
    uint64_t in = fe.Alloc(h.len);
    std::memcpy(fe.Host(in), &h, sizeof(h));
    std::memcpy(fe.Host(in) + sizeof(h), body.data(), body.size());
    uint64_t reply = fe.Alloc(4096);
    auto head = fe.Post(kRequestQueue, {Segment{in, h.len, false}, Segment{reply, 4096, true}});
    EXPECT_TRUE(head.ok()) << head.status();
    fe.Kick(kRequestQueue);
    return reply;
  }

  // FUSE_INIT as a 7.31 kernel sends it; returns what the agent answered.
  fuse_init_out Init(Frontend& fe) {
    fuse_init_in in{};
    in.major = 7;
    in.minor = 31;
    in.max_readahead = 1 << 17;
    in.flags = FUSE_BIG_WRITES | FUSE_MAX_PAGES;
    uint64_t reply =
        PostFuse(fe, FUSE_INIT, 1, 0, std::string(reinterpret_cast<char*>(&in), 16));
    auto used = fe.WaitUsed(kRequestQueue);
    EXPECT_TRUE(used.ok()) << used.status();
    fuse_out_header oh;
    std::memcpy(&oh, fe.Host(reply), sizeof(oh));
    EXPECT_EQ(oh.error, 0);
    fuse_init_out out;
    std::memcpy(&out, fe.Host(reply) + sizeof(oh), sizeof(out));
    return out;
  }

  bool WaitFor(const std::function<bool()>& pred) {
    for (int i = 0; i < 400; ++i) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  std::string dir_, socket_;
  Gate gate_;
  std::unique_ptr<virtio_fs::Server> server_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<v1::AgentAdmin::Stub> stub_;
};

TEST_F(GuestSessionTest, ReportsSessionQueuesAndFuseVersion) {
  v1::AgentGuestStatus g = Guest();
  EXPECT_FALSE(g.connected());
  EXPECT_FALSE(g.evicted());
  EXPECT_EQ(g.cache(), "auto");
  EXPECT_EQ(g.fuse_major(), 0u);
  EXPECT_EQ(g.queues_size(), 0);

  std::unique_ptr<Frontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(fe->Negotiate().ok());
  g = Guest();
  EXPECT_TRUE(g.connected());
  EXPECT_EQ(g.fuse_major(), 0u);  // no INIT yet
  fuse_init_out init = Init(*fe);
  ASSERT_EQ(init.major, 7u);
  ASSERT_EQ(init.minor, 31u);

  // A GETATTR held in the handler is in flight on the request queue.
  PostFuse(*fe, FUSE_GETATTR, 2, FUSE_ROOT_ID, std::string(sizeof(fuse_getattr_in), '\0'));
  ASSERT_TRUE(WaitFor([this] {
    absl::MutexLock lock(&gate_.mu);
    return gate_.held == 1;
  }));
  g = Guest();
  EXPECT_TRUE(g.connected());
  EXPECT_EQ(g.fuse_major(), 7u);
  EXPECT_EQ(g.fuse_minor(), 31u);
  EXPECT_EQ(g.max_write(), init.max_write);
  EXPECT_EQ(g.connections(), 1u);
  ASSERT_EQ(g.queues_size(), 2);  // hiprio + one request queue
  EXPECT_EQ(g.queues(0).index(), 0u);
  EXPECT_EQ(g.queues(0).size(), 128u);
  EXPECT_TRUE(g.queues(0).started());
  EXPECT_TRUE(g.queues(0).enabled());
  EXPECT_EQ(g.queues(0).in_flight(), 0u);
  EXPECT_EQ(g.queues(1).index(), 1u);
  EXPECT_EQ(g.queues(1).size(), 128u);
  EXPECT_EQ(g.queues(1).in_flight(), 1u);
  {
    absl::MutexLock lock(&gate_.mu);
    gate_.open = true;
  }
  ASSERT_TRUE(fe->WaitUsed(kRequestQueue).ok());
  ASSERT_TRUE(WaitFor([this] { return Guest().queues(1).in_flight() == 0; }));
}

TEST_F(GuestSessionTest, EvictClosesTheSessionAndRefusesUntilAdmitted) {
  std::unique_ptr<Frontend> fe = Connect();
  ASSERT_NE(fe, nullptr);
  ASSERT_TRUE(fe->Negotiate().ok());
  Init(*fe);
  // A request in flight when the operator evicts: it is answered, then the
  // connection closes.
  uint64_t reply =
      PostFuse(*fe, FUSE_GETATTR, 2, FUSE_ROOT_ID, std::string(sizeof(fuse_getattr_in), '\0'));
  ASSERT_TRUE(WaitFor([this] {
    absl::MutexLock lock(&gate_.mu);
    return gate_.held == 1;
  }));
  v1::EvictGuestResponse evicted;
  grpc::Status s = Evict("vm1", &evicted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(evicted.was_connected());
  EXPECT_FALSE(fe->WaitClosed(absl::Milliseconds(200)));  // waits for the request
  {
    absl::MutexLock lock(&gate_.mu);
    gate_.open = true;
  }
  auto used = fe->WaitUsed(kRequestQueue);
  ASSERT_TRUE(used.ok()) << used.status();
  fuse_out_header oh;
  std::memcpy(&oh, fe->Host(reply), sizeof(oh));
  EXPECT_EQ(oh.unique, 2u);
  EXPECT_EQ(oh.error, 0);
  EXPECT_TRUE(fe->WaitClosed(absl::Seconds(5)));
  ASSERT_TRUE(WaitFor([this] { return !Guest().connected(); }));
  v1::AgentGuestStatus g = Guest();
  EXPECT_TRUE(g.evicted());
  EXPECT_EQ(g.queues_size(), 0);
  EXPECT_EQ(g.fuse_major(), 0u);

  // A reconnecting front end is closed at once, and not counted as a session.
  std::unique_ptr<Frontend> again = Connect();
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(again->WaitClosed(absl::Seconds(5)));
  g = Guest();
  EXPECT_EQ(g.refused_connections(), 1u);
  EXPECT_EQ(g.connections(), 1u);
  EXPECT_FALSE(g.connected());
  // Evicting again: nothing to close, still refused.
  ASSERT_TRUE(Evict("vm1", &evicted).ok());
  EXPECT_FALSE(evicted.was_connected());

  v1::AdmitGuestResponse admitted;
  ASSERT_TRUE(Admit("vm1", &admitted).ok());
  EXPECT_TRUE(admitted.was_evicted());
  ASSERT_TRUE(Admit("vm1", &admitted).ok());
  EXPECT_FALSE(admitted.was_evicted());
  std::unique_ptr<Frontend> back = Connect();
  ASSERT_NE(back, nullptr);
  ASSERT_TRUE(back->Negotiate().ok());
  EXPECT_EQ(Init(*back).minor, 31u);
  g = Guest();
  EXPECT_TRUE(g.connected());
  EXPECT_FALSE(g.evicted());
  EXPECT_EQ(g.connections(), 2u);
  EXPECT_EQ(g.fuse_major(), 7u);
}

TEST_F(GuestSessionTest, EvictErrors) {
  v1::EvictGuestResponse evicted;
  grpc::Status s = Evict("nope", &evicted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no guest named \"nope\"");
  EXPECT_EQ(Evict("", &evicted).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::AdmitGuestResponse admitted;
  EXPECT_EQ(Admit("nope", &admitted).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(Guest().evicted());
}

}  // namespace
}  // namespace coherefs::agent::admin
