#include "client/status_view.h"

#include <string>

#include "gtest/gtest.h"

namespace coherefs::client {
namespace {

v1::ListAgentsResponse TwoAgents() {
  v1::ListAgentsResponse r;
  r.set_epoch(3);
  v1::AgentInfo* a = r.add_agents();
  a->set_agent_id("host-a");
  a->set_live(true);
  a->set_lease_remaining_ms(8700);
  a->set_lease_ttl_ms(10000);
  a->set_last_keepalive_age_ms(1300);
  a->set_max_guest_lease_ms(6100);
  v1::AgentVolumeState* v = a->add_volumes();
  v->set_volume("default");
  v->set_streaming(true);
  v->set_committed_seq(12);
  v->set_delivered_seq(12);
  v->set_acked_seq(11);
  v1::AgentInfo* b = r.add_agents();
  b->set_agent_id("host-b");
  b->set_lease_ttl_ms(10000);
  b->set_expired_for_ms(2500);
  b->set_last_keepalive_age_ms(12500);
  b->set_max_guest_lease_ms(6100);
  v = b->add_volumes();
  v->set_volume("default");
  v->set_committed_seq(12);
  v->set_acked_seq(4);
  return r;
}

TEST(StatusViewTest, CoordinatorAgentsTables) {
  EXPECT_EQ(RenderCoordinatorAgents(TwoAgents()),
            "AGENT   STATE    LEASE LEFT MS  LEASE TTL MS  EXPIRED FOR MS  KEEPALIVE AGE MS  "
            "MAX GUEST LEASE MS\n"
            "host-a  live     8700           10000         -               1300              6100\n"
            "host-b  expired  0              10000         2500            12500             6100\n"
            "AGENT   VOLUME   STREAMING  COMMITTED SEQ  DELIVERED SEQ  ACKED SEQ\n"
            "host-a  default  yes        12             12             11\n"
            "host-b  default  no         12             -              4\n");
  EXPECT_EQ(RenderCoordinatorAgents(v1::ListAgentsResponse()), "no agent registered\n");
}

TEST(StatusViewTest, CoordinatorAgentsJson) {
  JsonWriter w;
  WriteCoordinatorAgents(TwoAgents(), w);
  EXPECT_EQ(w.str(),
            "[{\"agent_id\":\"host-a\",\"live\":true,\"lease_remaining_ms\":8700,"
            "\"lease_ttl_ms\":10000,\"expired_for_ms\":0,\"last_keepalive_age_ms\":1300,"
            "\"max_guest_lease_ms\":6100,\"volumes\":[{\"volume\":\"default\",\"streaming\":true,"
            "\"committed_seq\":12,\"delivered_seq\":12,\"acked_seq\":11}]},"
            "{\"agent_id\":\"host-b\",\"live\":false,\"lease_remaining_ms\":0,"
            "\"lease_ttl_ms\":10000,\"expired_for_ms\":2500,\"last_keepalive_age_ms\":12500,"
            "\"max_guest_lease_ms\":6100,\"volumes\":[{\"volume\":\"default\",\"streaming\":false,"
            "\"committed_seq\":12,\"delivered_seq\":0,\"acked_seq\":4}]}]");
}

v1::AgentStatus OneGuestAgent() {
  v1::AgentStatus s;
  s.set_agent_id("host-a");
  s.set_epoch(3);
  v1::AgentVolumeStatus* v = s.add_volumes();
  v->set_name("default");
  v->set_coherence("strict");
  v->set_lease_max_ms(5000);
  v1::AgentGuestStatus* g = s.add_guests();
  g->set_name("vm1");
  g->set_volume("default");
  g->set_socket_path("/run/vm1.sock");
  g->set_connected(true);
  g->set_cache("auto");
  g->set_fuse_major(7);
  g->set_fuse_minor(38);
  g->set_max_write(1 << 20);
  g->set_connections(1);
  g->set_requests(42);
  for (uint32_t i = 0; i < 3; ++i) {
    v1::AgentQueueStatus* q = g->add_queues();
    q->set_index(i);
    q->set_size(i == 2 ? 0 : 1024);
    q->set_started(i < 2);
    q->set_enabled(i < 2);
    q->set_in_flight(i == 1 ? 3 : 0);
  }
  v1::AgentGuestStatus* evicted = s.add_guests();
  evicted->set_name("vm2");
  evicted->set_volume("default");
  evicted->set_socket_path("/run/vm2.sock");
  evicted->set_evicted(true);
  evicted->set_refused_connections(4);
  evicted->set_cache("auto");
  return s;
}

TEST(StatusViewTest, GuestColumns) {
  v1::AgentStatus s = OneGuestAgent();
  EXPECT_EQ(GuestState(s.guests(0)), "connected");
  EXPECT_EQ(GuestState(s.guests(1)), "evicted");
  EXPECT_EQ(GuestState(v1::AgentGuestStatus()), "idle");
  EXPECT_EQ(FuseVersion(s.guests(0)), "7.38");
  EXPECT_EQ(FuseVersion(s.guests(1)), "-");
  EXPECT_EQ(QueueDepths(s.guests(0)), "0:1024/0,1:1024/3,2:0/stopped");
  EXPECT_EQ(QueueDepths(s.guests(1)), "-");
}

TEST(StatusViewTest, AgentStatusText) {
  std::string text = RenderAgentStatus("127.0.0.1:7430", OneGuestAgent());
  EXPECT_EQ(text,
            "agent 127.0.0.1:7430  id host-a  epoch 3  fenced no\n"
            "  VOLUME   COHERENCE  LEASE MAX MS  FENCED  TABLE SLOTS  TABLE SEQ  LEASES GRANTED  "
            "BUMPS  INVALIDATIONS\n"
            "  default  strict     5000          no      -            -          0               "
            "0      0\n"
            "  GUEST  VOLUME   STATE      CACHE  FUSE  MAX WRITE  CONNECTIONS  REQUESTS  "
            "QUEUES (INDEX:SIZE/IN FLIGHT)  SOCKET\n"
            "  vm1    default  connected  auto   7.38  1048576    1            42        "
            "0:1024/0,1:1024/3,2:0/stopped  /run/vm1.sock\n"
            "  vm2    default  evicted    auto   -     -          0            0         "
            "-                              /run/vm2.sock\n");
}

TEST(StatusViewTest, AgentStatusJsonGuest) {
  JsonWriter w;
  w.BeginObject().Key("target").String("t");
  WriteAgentStatus(OneGuestAgent(), w);
  w.EndObject();
  const std::string& j = w.str();
  EXPECT_NE(j.find("{\"name\":\"vm1\",\"socket_path\":\"/run/vm1.sock\",\"volume\":\"default\","
                   "\"state\":\"connected\",\"connected\":true,\"evicted\":false,"
                   "\"refused_connections\":0,\"cache\":\"auto\",\"fuse_major\":7,"
                   "\"fuse_minor\":38,\"max_write\":1048576,\"connections\":1,\"requests\":42,"
                   "\"bad_chains\":0,\"bytes_in\":0,\"bytes_out\":0,\"queues\":[{\"index\":0,"
                   "\"size\":1024,\"started\":true,\"enabled\":true,\"in_flight\":0},"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("\"state\":\"evicted\",\"connected\":false,\"evicted\":true,"
                   "\"refused_connections\":4"),
            std::string::npos)
      << j;
}

}  // namespace
}  // namespace coherefs::client
