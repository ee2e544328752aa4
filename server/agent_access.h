// Who may do what at the coordinator: binds agent ids to the callers'
// certificates (mutual TLS) and agents to the volumes they registered for
// (RegisterAgentRequest.volumes), for the gRPC service to check before it
// calls the core. Kept apart from the core because it is about callers,
// not versions: the core never sees a certificate.
//
// Rules (proto/coherefs/v1/coordinator.proto, PERMISSION_DENIED):
//  - With mutual TLS, an agent_id in a request must be the CN or a DNS
//    subject alternative name of the caller's certificate.
//  - A call on a volume by a registered agent must name a volume it
//    registered for. The caller is that agent when the request names it
//    (agent_id), or, with mutual TLS, when the certificate is the agent's
//    even if the request names nobody (no escape by leaving agent_id out).
//  - Anonymous callers (tools, operators: no agent_id, and with mutual TLS a
//    certificate that is no registered agent's) are not restricted.
//  - An agent registered with no volumes may use every volume with
//    --insecure (older agents, tools) and none with mutual TLS.
// Unknown agent ids pass through, so the core answers NOT_FOUND as before.
//
// Thread-safe.
#ifndef COHEREFS_SERVER_AGENT_ACCESS_H_
#define COHEREFS_SERVER_AGENT_ACCESS_H_

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace coherefs::server {

class AgentAccess {
 public:
  // `mtls`: callers are authenticated by certificates (peer identities are
  // known); false under --insecure.
  explicit AgentAccess(bool mtls) : mtls_(mtls) {}

  bool mtls() const { return mtls_; }

  // PERMISSION_DENIED if, with mutual TLS, `agent_id` is not one of the
  // caller's certificate identities (`peer`). OK for an empty agent_id.
  absl::Status CheckAgentId(const std::vector<std::string>& peer,
                            const std::string& agent_id) const;

  // After the core accepted a registration: `agent_id` may use `volumes`
  // (see the rules above for an empty list). Replaces an earlier record.
  void Registered(const std::string& agent_id, const std::vector<std::string>& volumes);
  // After an unregistration: the id is forgotten.
  void Unregistered(const std::string& agent_id);

  // For Resolve, Bump, Subscribe, AckInvalidations: CheckAgentId, then the
  // volume rule for the calling agent (named by `agent_id`, or with mutual
  // TLS by the certificate).
  absl::Status CheckVolume(const std::vector<std::string>& peer, const std::string& agent_id,
                           const std::string& volume) const;

 private:
  struct Registration {
    bool every_volume = false;
    std::set<std::string> volumes;
  };

  const bool mtls_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Registration> agents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_AGENT_ACCESS_H_
