#include "client/table_diff.h"

#include "gtest/gtest.h"

namespace coherefs::client {
namespace {

constexpr uint64_t kE1 = uint64_t{1} << 40;
constexpr uint64_t kE2 = uint64_t{2} << 40;

TEST(ClassifyTest, Cases) {
  EXPECT_EQ(Classify(kE1 | 3, kE1 | 3, kE1 | 3), SlotAgreement::kAgree);
  // Bumped between the two coordinator reads: the agent saw the first.
  EXPECT_EQ(Classify(kE1 | 3, kE1 | 4, kE1 | 5), SlotAgreement::kAgree);
  EXPECT_EQ(Classify(kE1 | 3, kE1 | 2, kE1 | 3), SlotAgreement::kBehind);
  EXPECT_EQ(Classify(kE1 | 3, kE1 | 4, kE1 | 3), SlotAgreement::kAhead);
  // Allocated, never bumped, never resolved by the agent.
  EXPECT_EQ(Classify(kE1, 0, kE1), SlotAgreement::kUnseen);
  // Never seen by the agent, but bumped: it would serve stale data.
  EXPECT_EQ(Classify(kE2 | 1, 0, kE2 | 1), SlotAgreement::kBehind);
  EXPECT_TRUE(Consistent(SlotAgreement::kUnseen));
  EXPECT_FALSE(Consistent(SlotAgreement::kBehind));
  EXPECT_STREQ(SlotAgreementName(SlotAgreement::kAhead), "ahead");
}

TEST(DiffTablesTest, ReportsOnlyInconsistentSlots) {
  std::vector<uint64_t> before = {kE1 | 1, kE1, kE1 | 5, kE1 | 2, kE1 | 7};
  std::vector<uint64_t> agent = {kE1 | 1, 0, kE1 | 4, kE1 | 9};  // slot 4 missing
  std::vector<uint64_t> after = {kE1 | 1, kE1, kE1 | 5, kE1 | 3};
  std::vector<SlotDiff> d = DiffTables(before, agent, after);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].slot, 2u);
  EXPECT_EQ(d[0].agreement, SlotAgreement::kBehind);
  EXPECT_EQ(d[0].coordinator, kE1 | 5);
  EXPECT_EQ(d[0].agent, kE1 | 4);
  EXPECT_EQ(d[1].slot, 3u);
  EXPECT_EQ(d[1].agreement, SlotAgreement::kAhead);
  EXPECT_EQ(d[2].slot, 4u);
  EXPECT_EQ(d[2].agreement, SlotAgreement::kBehind);
  EXPECT_EQ(d[2].agent, 0u);
}

}  // namespace
}  // namespace coherefs::client
