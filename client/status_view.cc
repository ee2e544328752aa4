#include "client/status_view.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coherefs::client {
namespace {

std::string YesNo(bool b) { return b ? "yes" : "no"; }
std::string Num(uint64_t n) { return std::to_string(n); }

}  // namespace

std::string RenderCoordinatorAgents(const v1::ListAgentsResponse& agents) {
  if (agents.agents_size() == 0) return "no agent registered\n";
  TextTable t({"AGENT", "STATE", "LEASE LEFT MS", "LEASE TTL MS", "EXPIRED FOR MS",
               "KEEPALIVE AGE MS", "MAX GUEST LEASE MS"});
  TextTable v({"AGENT", "VOLUME", "STREAMING", "COMMITTED SEQ", "DELIVERED SEQ", "ACKED SEQ"});
  bool any_volume = false;
  for (const v1::AgentInfo& a : agents.agents()) {
    t.AddRow({a.agent_id(), a.live() ? "live" : "expired", Num(a.lease_remaining_ms()),
              Num(a.lease_ttl_ms()), a.live() ? "-" : Num(a.expired_for_ms()),
              Num(a.last_keepalive_age_ms()), Num(a.max_guest_lease_ms())});
    for (const v1::AgentVolumeState& s : a.volumes()) {
      any_volume = true;
      v.AddRow({a.agent_id(), s.volume(), YesNo(s.streaming()), Num(s.committed_seq()),
                s.streaming() ? Num(s.delivered_seq()) : "-", Num(s.acked_seq())});
    }
  }
  return any_volume ? t.Render() + v.Render() : t.Render();
}

void WriteCoordinatorAgents(const v1::ListAgentsResponse& agents, JsonWriter& w) {
  w.BeginArray();
  for (const v1::AgentInfo& a : agents.agents()) {
    w.BeginObject().Key("agent_id").String(a.agent_id()).Key("live").Bool(a.live());
    w.Key("lease_remaining_ms").Uint(a.lease_remaining_ms());
    w.Key("lease_ttl_ms").Uint(a.lease_ttl_ms()).Key("expired_for_ms").Uint(a.expired_for_ms());
    w.Key("last_keepalive_age_ms").Uint(a.last_keepalive_age_ms());
    w.Key("max_guest_lease_ms").Uint(a.max_guest_lease_ms()).Key("volumes").BeginArray();
    for (const v1::AgentVolumeState& s : a.volumes()) {
      w.BeginObject().Key("volume").String(s.volume()).Key("streaming").Bool(s.streaming());
      w.Key("committed_seq").Uint(s.committed_seq()).Key("delivered_seq").Uint(s.delivered_seq());
      w.Key("acked_seq").Uint(s.acked_seq()).EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray();
}

std::string GuestState(const v1::AgentGuestStatus& g) {
  if (g.connected()) return "connected";
  return g.evicted() ? "evicted" : "idle";
}

std::string FuseVersion(const v1::AgentGuestStatus& g) {
  if (g.fuse_major() == 0) return "-";
  return absl::StrCat(g.fuse_major(), ".", g.fuse_minor());
}

std::string QueueDepths(const v1::AgentGuestStatus& g) {
  std::vector<std::string> parts;
  for (const v1::AgentQueueStatus& q : g.queues()) {
    parts.push_back(absl::StrCat(q.index(), ":", q.size(), "/",
                                 q.started() ? Num(q.in_flight()) : "stopped"));
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ",");
}

std::string RenderAgentStatus(const std::string& target, const v1::AgentStatus& s) {
  std::string out =
      absl::StrCat("agent ", target, "  id ", s.agent_id().empty() ? "-" : s.agent_id(),
                   "  epoch ", s.epoch(), "  fenced ", YesNo(s.fenced()), "\n");
  TextTable t({"VOLUME", "COHERENCE", "LEASE MAX MS", "FENCED", "TABLE SLOTS", "TABLE SEQ",
               "LEASES GRANTED", "BUMPS", "INVALIDATIONS"});
  for (const v1::AgentVolumeStatus& v : s.volumes()) {
    t.AddRow({v.name(), v.coherence(), Num(v.lease_max_ms()), YesNo(v.fenced()),
              v.has_table() ? absl::StrCat(v.table_slots_used(), "/", v.table_capacity()) : "-",
              v.has_table() ? Num(v.table_committed_seq()) : "-", Num(v.leases_granted()),
              Num(v.bumps()), Num(v.invalidations())});
  }
  out += t.Render("  ");
  if (s.guests_size() == 0) return out;
  TextTable g({"GUEST", "VOLUME", "STATE", "CACHE", "FUSE", "MAX WRITE", "CONNECTIONS",
               "REQUESTS", "QUEUES (INDEX:SIZE/IN FLIGHT)", "SOCKET"});
  for (const v1::AgentGuestStatus& gs : s.guests()) {
    g.AddRow({gs.name(), gs.volume(), GuestState(gs), gs.cache().empty() ? "-" : gs.cache(),
              FuseVersion(gs), gs.max_write() > 0 ? Num(gs.max_write()) : "-",
              Num(gs.connections()), Num(gs.requests()), QueueDepths(gs), gs.socket_path()});
  }
  return out + g.Render("  ");
}

void WriteAgentStatus(const v1::AgentStatus& s, JsonWriter& w) {
  w.Key("agent_id").String(s.agent_id()).Key("coordinator").String(s.coordinator());
  w.Key("epoch").Uint(s.epoch()).Key("fenced").Bool(s.fenced()).Key("volumes").BeginArray();
  for (const v1::AgentVolumeStatus& v : s.volumes()) {
    w.BeginObject().Key("name").String(v.name()).Key("coherence").String(v.coherence());
    w.Key("lease_max_ms").Uint(v.lease_max_ms()).Key("fenced").Bool(v.fenced());
    w.Key("draining").Bool(v.draining());
    w.Key("has_table").Bool(v.has_table()).Key("table_capacity").Uint(v.table_capacity());
    w.Key("table_slots_used").Uint(v.table_slots_used());
    w.Key("table_epoch").Uint(v.table_epoch());
    w.Key("table_committed_seq").Uint(v.table_committed_seq());
    w.Key("leases_granted").Uint(v.leases_granted());
    w.Key("leases_refused").Uint(v.leases_refused()).Key("bumps").Uint(v.bumps());
    w.Key("invalidations").Uint(v.invalidations()).EndObject();
  }
  w.EndArray().Key("guests").BeginArray();
  for (const v1::AgentGuestStatus& g : s.guests()) {
    w.BeginObject().Key("name").String(g.name()).Key("socket_path").String(g.socket_path());
    w.Key("volume").String(g.volume()).Key("state").String(GuestState(g));
    w.Key("connected").Bool(g.connected()).Key("evicted").Bool(g.evicted());
    w.Key("refused_connections").Uint(g.refused_connections());
    w.Key("cache").String(g.cache()).Key("fuse_major").Uint(g.fuse_major());
    w.Key("fuse_minor").Uint(g.fuse_minor()).Key("max_write").Uint(g.max_write());
    w.Key("connections").Uint(g.connections());
    w.Key("requests").Uint(g.requests()).Key("bad_chains").Uint(g.bad_chains());
    w.Key("bytes_in").Uint(g.bytes_in()).Key("bytes_out").Uint(g.bytes_out());
    w.Key("queues").BeginArray();
    for (const v1::AgentQueueStatus& q : g.queues()) {
      w.BeginObject().Key("index").Uint(q.index()).Key("size").Uint(q.size());
      w.Key("started").Bool(q.started()).Key("enabled").Bool(q.enabled());
      w.Key("in_flight").Uint(q.in_flight()).EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray();
}

}  // namespace coherefs::client
