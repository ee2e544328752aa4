#include "agent/coherence/lease_table.h"

#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace coherefs::agent::coherence {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

LeasePolicy Policy() {
  LeasePolicy p;
  p.max_lease = milliseconds(5000);
  p.min_lease = milliseconds(10);
  p.age_divisor = 10;
  return p;
}

const LeaseClock::time_point kT0 = LeaseClock::time_point() + std::chrono::hours(1);

TEST(LeaseTableTest, UnchangedSlotGetsTheMaximum) {
  LeaseTable t(Policy());
  EXPECT_EQ(t.LeaseFor(7, kT0), milliseconds(5000));
}

TEST(LeaseTableTest, LeaseIsATenthOfTheAgeSinceTheLastChange) {
  LeaseTable t(Policy());
  t.NoteChanged(7, kT0);
  EXPECT_EQ(t.LeaseFor(7, kT0), milliseconds(0));
  EXPECT_EQ(t.LeaseFor(7, kT0 + milliseconds(99)), milliseconds(0));  // 9.9 ms < min
  EXPECT_EQ(t.LeaseFor(7, kT0 + seconds(2)), milliseconds(200));
  EXPECT_EQ(t.LeaseFor(7, kT0 + seconds(600)), milliseconds(5000));   // capped
  EXPECT_EQ(t.LeaseFor(8, kT0), milliseconds(5000));                  // other slot
  // An older change report does not move the mark back.
  t.NoteChanged(7, kT0 - seconds(100));
  EXPECT_EQ(t.LeaseFor(7, kT0 + seconds(2)), milliseconds(200));
}

TEST(LeaseTableTest, GrantRecordsOnlyWhileTheVersionIsUnchanged) {
  LeaseTable t(Policy());
  uint64_t version = 5;
  auto current = [&version] { return version; };
  EXPECT_TRUE(t.Grant(1, 3, kT0 + seconds(2), 5, current));
  version = 6;
  EXPECT_FALSE(t.Grant(2, 3, kT0 + seconds(9), 5, current));
  // Guest 2's refused grant left no lease behind.
  EXPECT_EQ(t.RemainingExcept({3}, 1, kT0), LeaseClock::duration::zero());
  EXPECT_EQ(t.RemainingExcept({3}, 2, kT0), seconds(2));
}

TEST(LeaseTableTest, RemainingExceptSkipsTheCallerAndExpiredLeases) {
  LeaseTable t(Policy());
  auto v = [] { return uint64_t{1}; };
  ASSERT_TRUE(t.Grant(1, 3, kT0 + seconds(4), 1, v));
  ASSERT_TRUE(t.Grant(2, 3, kT0 + seconds(1), 1, v));
  ASSERT_TRUE(t.Grant(2, 9, kT0 + seconds(3), 1, v));
  EXPECT_EQ(t.RemainingExcept({3}, 1, kT0), seconds(1));
  EXPECT_EQ(t.RemainingExcept({3}, 2, kT0), seconds(4));
  EXPECT_EQ(t.RemainingExcept({3, 9}, 1, kT0), seconds(3));
  // A second grant to the same guest extends, never shortens.
  ASSERT_TRUE(t.Grant(2, 3, kT0 + milliseconds(500), 1, v));
  EXPECT_EQ(t.RemainingExcept({3}, 1, kT0), seconds(1));
  EXPECT_EQ(t.RemainingExcept({3}, 1, kT0 + seconds(2)), LeaseClock::duration::zero());
}

TEST(LeaseTableTest, RemainingReportsEachSlotOnceRoundedUp) {
  LeaseTable t(Policy());
  auto v = [] { return uint64_t{1}; };
  ASSERT_TRUE(t.Grant(1, 3, kT0 + std::chrono::microseconds(1500), 1, v));
  ASSERT_TRUE(t.Grant(2, 3, kT0 + milliseconds(1), 1, v));
  ASSERT_TRUE(t.Grant(1, 4, kT0 + seconds(2), 1, v));
  std::vector<SlotRemaining> r = t.Remaining({4, 3, 3, 99}, kT0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].slot, 3u);
  EXPECT_EQ(r[0].remaining, milliseconds(2));  // 1.5 ms rounds up
  EXPECT_EQ(r[1].slot, 4u);
  EXPECT_EQ(r[1].remaining, milliseconds(2000));
  EXPECT_EQ(t.LiveLeases(kT0), 3u);
  std::vector<SlotRemaining> all = t.AllRemaining(kT0 + milliseconds(10));
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].slot, 4u);
}

TEST(LeaseTableTest, SweepForgetsExpiredLeasesAndOldChanges) {
  LeaseTable t(Policy());
  auto v = [] { return uint64_t{1}; };
  ASSERT_TRUE(t.Grant(1, 3, kT0 + seconds(1), 1, v));
  t.NoteChanged(4, kT0);
  EXPECT_EQ(t.Sweep(kT0), 2u);
  EXPECT_EQ(t.Sweep(kT0 + seconds(2)), 1u);   // lease gone, change kept
  EXPECT_EQ(t.Sweep(kT0 + seconds(50)), 0u);  // age >= 10 * max: forgotten
  EXPECT_EQ(t.LeaseFor(4, kT0 + seconds(50)), milliseconds(5000));
}

}  // namespace
}  // namespace coherefs::agent::coherence
