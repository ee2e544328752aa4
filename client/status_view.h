// How coherectl shows cluster and agent state: the coordinator's agents
// (ListAgents) and an agent's admin status (GetStatus) as text tables and
// as JSON. Pure functions of the protos, so the exact output is unit-tested
// (status_view_test) apart from the daemons.
//
// Durations are whole milliseconds in both forms (columns end in "MS"), so
// scripts and tests compare numbers, not formatted strings.
#ifndef COHEREFS_CLIENT_STATUS_VIEW_H_
#define COHEREFS_CLIENT_STATUS_VIEW_H_

#include <string>

#include "client/coherectl_output.h"
#include "proto/coherefs/v1/agent_admin.pb.h"
#include "proto/coherefs/v1/coordinator.pb.h"

namespace coherefs::client {

// The agents the coordinator knows: a table of their leases, then one of
// the volumes they follow (omitted when none does). "no agent registered"
// when the list is empty.
std::string RenderCoordinatorAgents(const v1::ListAgentsResponse& agents);
// [{"agent_id", "live", "lease_remaining_ms", "lease_ttl_ms",
//   "expired_for_ms", "last_keepalive_age_ms", "max_guest_lease_ms",
//   "volumes": [{"volume", "streaming", "committed_seq", "delivered_seq",
//                "acked_seq"}]}]
void WriteCoordinatorAgents(const v1::ListAgentsResponse& agents, JsonWriter& w);

// One agent's admin status under the header line "agent TARGET  id ...":
// its volumes, then its guests (state, FUSE version, queues).
std::string RenderAgentStatus(const std::string& target, const v1::AgentStatus& status);
// The agent object's fields after "target" (the caller opened the object).
void WriteAgentStatus(const v1::AgentStatus& status, JsonWriter& w);

// "connected", "evicted" or "idle" (no session, not evicted).
std::string GuestState(const v1::AgentGuestStatus& guest);
// "7.38", or "-" before INIT / without a session.
std::string FuseVersion(const v1::AgentGuestStatus& guest);
// Each queue as INDEX:SIZE/IN_FLIGHT, comma-separated ("-" for none); a
// queue that is not running shows "INDEX:SIZE/stopped".
std::string QueueDepths(const v1::AgentGuestStatus& guest);

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_STATUS_VIEW_H_
