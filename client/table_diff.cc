#include "client/table_diff.h"

#include <cstddef>

namespace coherefs::client {
namespace {

constexpr uint64_t kCounterMask = (uint64_t{1} << 40) - 1;

}  // namespace

const char* SlotAgreementName(SlotAgreement a) {
  switch (a) {
    case SlotAgreement::kAgree:
      return "agree";
    case SlotAgreement::kUnseen:
      return "unseen";
    case SlotAgreement::kBehind:
      return "behind";
    case SlotAgreement::kAhead:
      return "ahead";
  }
  return "?";
}

bool Consistent(SlotAgreement a) {
  return a == SlotAgreement::kAgree || a == SlotAgreement::kUnseen;
}

SlotAgreement Classify(uint64_t before, uint64_t agent, uint64_t after) {
  if (agent > after) return SlotAgreement::kAhead;
  if (agent >= before) return SlotAgreement::kAgree;
  if (agent == 0 && (before & kCounterMask) == 0) return SlotAgreement::kUnseen;
  return SlotAgreement::kBehind;
}

std::vector<SlotDiff> DiffTables(const std::vector<uint64_t>& before,
                                 const std::vector<uint64_t>& agent,
                                 const std::vector<uint64_t>& after) {
  std::vector<SlotDiff> out;
  for (std::size_t i = 0; i < before.size(); ++i) {
    uint64_t a = i < agent.size() ? agent[i] : 0;
    uint64_t hi = i < after.size() ? after[i] : before[i];
    SlotAgreement s = Classify(before[i], a, hi);
    if (!Consistent(s)) out.push_back({static_cast<uint32_t>(i), before[i], a, s});
  }
  return out;
}

}  // namespace coherefs::client
