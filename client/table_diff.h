// Comparing an agent's version table with the coordinator's, for
// `coherectl resolve --agent` and `coherectl table diff`.
//
// The two are read at different moments, so a diff brackets the agent's
// read between two coordinator reads (before, after): versions only grow,
// so an agent version within [before, after] is consistent with some
// moment in between. Below `before` the agent is behind (it missed or has
// not yet applied an invalidation committed before it was read); above
// `after` it is ahead, which means the coordinator lost acknowledged state.
// A slot the agent never resolved holds 0 in its table: when the
// coordinator never bumped it either (its counter is 0, only the epoch of
// its allocation), the agent has nothing to learn about it: "unseen", not a
// disagreement. Pure functions; thread-safe.
#ifndef COHEREFS_CLIENT_TABLE_DIFF_H_
#define COHEREFS_CLIENT_TABLE_DIFF_H_

#include <cstdint>
#include <vector>

namespace coherefs::client {

enum class SlotAgreement { kAgree, kUnseen, kBehind, kAhead };

// "agree", "unseen", "behind", "ahead".
const char* SlotAgreementName(SlotAgreement a);
// kAgree and kUnseen.
bool Consistent(SlotAgreement a);

SlotAgreement Classify(uint64_t coordinator_before, uint64_t agent, uint64_t coordinator_after);

struct SlotDiff {
  uint32_t slot = 0;
  uint64_t coordinator = 0;  // `before`
  uint64_t agent = 0;
  SlotAgreement agreement = SlotAgreement::kAgree;
};

// The inconsistent slots among [0, before.size()); an `agent` or `after`
// shorter than `before` reads as 0 / as `before` past its end.
std::vector<SlotDiff> DiffTables(const std::vector<uint64_t>& before,
                                 const std::vector<uint64_t>& agent,
                                 const std::vector<uint64_t>& after);

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_TABLE_DIFF_H_
