#include "agent/coherence/link_backend.h"

#include <utility>

#include "common/status_macros.h"

namespace coherefs::agent::coherence {

LinkBackend::LinkBackend(CoordinatorLink* link, std::string volume)
    : link_(link),
      volume_(std::move(volume)),
      fenced_(link->volume_metrics(volume_) != nullptr
                  ? &link->volume_metrics(volume_)->fenced
                  : nullptr) {}

absl::StatusOr<std::vector<ResolvedSlot>> LinkBackend::Resolve(
    const std::vector<std::string>& keys) {
  ASSIGN_OR_RETURN(std::vector<v1::SlotVersion> slots, link_->Resolve(volume_, keys));
  if (slots.size() != keys.size()) {
    return absl::InternalError("resolve reply does not match the request");
  }
  std::vector<ResolvedSlot> out;
  out.reserve(slots.size());
  for (const v1::SlotVersion& sv : slots) out.push_back({sv.slot(), sv.version()});
  return out;
}

absl::StatusOr<BumpOutcome> LinkBackend::Bump(const std::vector<uint32_t>& slots,
                                              bool wait_for_leases) {
  ASSIGN_OR_RETURN(BumpResult result, link_->Bump(volume_, slots, wait_for_leases));
  return BumpOutcome{result.lease_wait_ms};
}

bool LinkBackend::fenced() const {
  // The published flag covers sync and epoch; lease_lapsed() the lease by
  // the clock, exact even while the link's lease thread is in a call.
  return fenced_ == nullptr || fenced_->load(std::memory_order_acquire) ||
         link_->lease_lapsed();
}

}  // namespace coherefs::agent::coherence
