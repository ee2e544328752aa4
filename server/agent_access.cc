#include "server/agent_access.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace coherefs::server {
namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

absl::Status AgentAccess::CheckAgentId(const std::vector<std::string>& peer,
                                       const std::string& agent_id) const {
  if (!mtls_ || agent_id.empty() || Contains(peer, agent_id)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "agent id \"", agent_id, "\" is not the caller's certificate (CN/DNS names: ",
      peer.empty() ? "none" : absl::StrJoin(peer, ", "), ")"));
}

void AgentAccess::Registered(const std::string& agent_id,
                             const std::vector<std::string>& volumes) {
  Registration r;
  r.every_volume = volumes.empty() && !mtls_;
  r.volumes.insert(volumes.begin(), volumes.end());
  absl::MutexLock lock(&mu_);
  agents_[agent_id] = std::move(r);
}

void AgentAccess::Unregistered(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  agents_.erase(agent_id);
}

absl::Status AgentAccess::CheckVolume(const std::vector<std::string>& peer,
                                      const std::string& agent_id,
                                      const std::string& volume) const {
  if (absl::Status s = CheckAgentId(peer, agent_id); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  // The agents this call acts for: the named one, and with mutual TLS every
  // registered agent the certificate belongs to.
  std::vector<const std::string*> callers;
  if (!agent_id.empty()) callers.push_back(&agent_id);
  if (mtls_) {
    for (const std::string& id : peer) callers.push_back(&id);
  }
  for (const std::string* id : callers) {
    auto it = agents_.find(*id);
    if (it == agents_.end()) continue;
    const Registration& r = it->second;
    if (r.every_volume || r.volumes.count(volume) > 0) continue;
    return absl::PermissionDeniedError(absl::StrCat(
        "agent \"", *id, "\" is not registered for volume \"", volume, "\" (registered for: ",
        r.volumes.empty() ? "none" : absl::StrJoin(r.volumes, ", "), ")"));
  }
  return absl::OkStatus();
}

}  // namespace coherefs::server
