// LinkBackend: CoherenceBackend for one volume over the agent's
// CoordinatorLink (which raises the local VersionTable on Resolve and Bump).
//
// Ownership: borrows the link; it must outlive the backend.
// Thread-safety: as CoordinatorLink (all methods thread-safe).
#ifndef COHEREFS_AGENT_COHERENCE_LINK_BACKEND_H_
#define COHEREFS_AGENT_COHERENCE_LINK_BACKEND_H_

#include <atomic>
#include <string>
#include <vector>

#include "agent/coherence/coherence_backend.h"
#include "agent/coherence/coordinator_link.h"

namespace coherefs::agent::coherence {

class LinkBackend final : public CoherenceBackend {
 public:
  // `link` must follow `volume`.
  LinkBackend(CoordinatorLink* link, std::string volume);

  absl::StatusOr<std::vector<ResolvedSlot>> Resolve(
      const std::vector<std::string>& keys) override;
  absl::StatusOr<BumpOutcome> Bump(const std::vector<uint32_t>& slots,
                                   bool wait_for_leases) override;
  bool fenced() const override;

 private:
  CoordinatorLink* const link_;
  const std::string volume_;
  // The link's per-volume fence flag: one atomic load per reply.
  const std::atomic<bool>* const fenced_;
};

}  // namespace coherefs::agent::coherence

#endif  // COHEREFS_AGENT_COHERENCE_LINK_BACKEND_H_
