#include "agent/admin/admin_service.h"

#include <memory>

#include "agent/coherence/version_table.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/coherefs/v1/agent_admin.grpc.pb.h"

namespace coherefs::agent::admin {
namespace {

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto table = coherence::VersionTable::Create("vol", 16);
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = std::move(*table);
    ASSERT_TRUE(table_->SetSyncState(7, 42, 3).ok());
    ASSERT_TRUE(table_->Raise(2, (7ull << 40) | 5).ok());
    table_->SetFenced(false);

    AdminSources sources;
    sources.agent_id = "host-a";
    sources.coordinator = "127.0.0.1:1";
    sources.volumes.push_back({"vol", "bounded", 250, table_.get(), nullptr});
    sources.volumes.push_back({"plain", "off", 0, nullptr, nullptr});
    vhost_user::MetricsSnapshot m;
    m.connections = 1;
    m.requests = 99;
    m.bytes_in = 10;
    m.bytes_out = 20;
    sources.guests.push_back({"vm1", "/run/vm1.sock", "vol", [m] { return m; }});
    auto server = AdminServer::Start("127.0.0.1:0", std::move(sources));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::AgentAdmin::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status GetSlot(const std::string& volume, uint32_t slot, v1::GetSlotResponse* out) {
    grpc::ClientContext ctx;
    v1::GetSlotRequest request;
    request.set_volume(volume);
    request.set_slot(slot);
    return stub_->GetSlot(&ctx, request, out);
  }

  std::unique_ptr<coherence::VersionTable> table_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<v1::AgentAdmin::Stub> stub_;
};

TEST_F(AdminServiceTest, GetStatusReportsVolumesAndGuests) {
  grpc::ClientContext ctx;
  v1::AgentStatus status;
  ASSERT_TRUE(stub_->GetStatus(&ctx, v1::GetStatusRequest(), &status).ok());
  EXPECT_EQ(status.agent_id(), "host-a");
  EXPECT_EQ(status.coordinator(), "127.0.0.1:1");
  EXPECT_EQ(status.epoch(), 0u);  // no link
  ASSERT_EQ(status.volumes_size(), 2);
  const v1::AgentVolumeStatus& vol = status.volumes(0);
  EXPECT_EQ(vol.name(), "vol");
  EXPECT_EQ(vol.coherence(), "bounded");
  EXPECT_EQ(vol.lease_max_ms(), 250u);
  EXPECT_TRUE(vol.has_table());
  EXPECT_FALSE(vol.fenced());
  EXPECT_EQ(vol.table_capacity(), 16u);
  EXPECT_EQ(vol.table_slots_used(), 3u);
  EXPECT_EQ(vol.table_epoch(), 7u);
  EXPECT_EQ(vol.table_committed_seq(), 42u);
  EXPECT_EQ(status.volumes(1).name(), "plain");
  EXPECT_FALSE(status.volumes(1).has_table());
  ASSERT_EQ(status.guests_size(), 1);
  EXPECT_EQ(status.guests(0).name(), "vm1");
  EXPECT_EQ(status.guests(0).socket_path(), "/run/vm1.sock");
  EXPECT_EQ(status.guests(0).volume(), "vol");
  EXPECT_EQ(status.guests(0).connections(), 1u);
  EXPECT_EQ(status.guests(0).requests(), 99u);
  EXPECT_EQ(status.guests(0).bytes_out(), 20u);
}

TEST_F(AdminServiceTest, GetSlotReadsTheTable) {
  v1::GetSlotResponse slot;
  ASSERT_TRUE(GetSlot("vol", 2, &slot).ok());
  EXPECT_EQ(slot.version(), (7ull << 40) | 5);
  EXPECT_EQ(slot.slots_used(), 3u);
  EXPECT_EQ(slot.epoch(), 7u);
  EXPECT_EQ(slot.committed_seq(), 42u);
  EXPECT_FALSE(slot.fenced());
  ASSERT_TRUE(GetSlot("vol", 0, &slot).ok());
  EXPECT_EQ(slot.version(), 0u);
}

TEST_F(AdminServiceTest, GetSlotErrors) {
  v1::GetSlotResponse slot;
  EXPECT_EQ(GetSlot("", 0, &slot).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GetSlot("nope", 0, &slot).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetSlot("plain", 0, &slot).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetSlot("vol", 16, &slot).error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

TEST_F(AdminServiceTest, ReadTablePages) {
  grpc::ClientContext ctx;
  v1::ReadTableRequest request;
  request.set_volume("vol");
  request.set_start_slot(1);
  request.set_max_slots(3);
  v1::ReadTableResponse page;
  ASSERT_TRUE(stub_->ReadTable(&ctx, request, &page).ok());
  EXPECT_EQ(page.start_slot(), 1u);
  EXPECT_EQ(page.capacity(), 16u);
  EXPECT_EQ(page.slots_used(), 3u);
  EXPECT_EQ(page.epoch(), 7u);
  EXPECT_EQ(page.committed_seq(), 42u);
  ASSERT_EQ(page.versions_size(), 3);
  EXPECT_EQ(page.versions(0), 0u);
  EXPECT_EQ(page.versions(1), (7ull << 40) | 5);
  EXPECT_EQ(page.versions(2), 0u);

  // max_slots 0: up to the capacity.
  grpc::ClientContext ctx2;
  request.set_start_slot(10);
  request.set_max_slots(0);
  ASSERT_TRUE(stub_->ReadTable(&ctx2, request, &page).ok());
  EXPECT_EQ(page.versions_size(), 6);

  grpc::ClientContext ctx3;
  request.set_start_slot(16);
  EXPECT_EQ(stub_->ReadTable(&ctx3, request, &page).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  grpc::ClientContext ctx4;
  request.set_volume("plain");
  request.set_start_slot(0);
  EXPECT_EQ(stub_->ReadTable(&ctx4, request, &page).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(AdminServerTest, BusyAddressIsUnavailable) {
  auto first = AdminServer::Start("127.0.0.1:0", AdminSources());
  ASSERT_TRUE(first.ok());
  auto second = AdminServer::Start((*first)->address(), AdminSources());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace coherefs::agent::admin
