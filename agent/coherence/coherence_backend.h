// CoherenceBackend: what the coherence layer needs from the coordinator for
// one volume — slots for file keys, bumps, and whether the agent is fenced.
// The agent implements it over CoordinatorLink (link_backend.h); unit tests
// of the layer above use an in-memory fake.
//
// Contract for implementations: Resolve and Bump raise the volume's
// VersionTable with the versions they return BEFORE returning (so a bump is
// visible to this agent's grants the moment Bump returns); fenced() is cheap
// (called on every reply) and true whenever the agent may have missed an
// invalidation.
//
// Thread-safety: every method may be called from any thread.
#ifndef COHEREFS_AGENT_COHERENCE_COHERENCE_BACKEND_H_
#define COHEREFS_AGENT_COHERENCE_COHERENCE_BACKEND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coherefs::agent::coherence {

struct ResolvedSlot {
  uint32_t slot = 0;
  uint64_t version = 0;
};

struct BumpOutcome {
  // Strict mode: how long other agents' guests may still hold leases on the
  // bumped slots, from when the reply arrived.
  uint32_t lease_wait_ms = 0;
};

class CoherenceBackend {
 public:
  virtual ~CoherenceBackend() = default;
  // One slot per key, in order. Codes: FailedPrecondition while fenced,
  // Unavailable when unreachable, others as the coordinator says.
  virtual absl::StatusOr<std::vector<ResolvedSlot>> Resolve(
      const std::vector<std::string>& keys) = 0;
  virtual absl::StatusOr<BumpOutcome> Bump(const std::vector<uint32_t>& slots,
                                           bool wait_for_leases) = 0;
  virtual bool fenced() const = 0;
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_COHERENCE_BACKEND_H_
