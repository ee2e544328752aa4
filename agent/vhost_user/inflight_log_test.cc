// InflightLog: what a resumed ring serves again, returns as is, and where
// it continues, for deaths at every point of the take/serve/return cycle.
// A "death" is the log handed to a fresh InflightLog over the same memfd
// (Attach) with whatever the dead process had stored; the used index is
// what the ring shows.
#include "agent/vhost_user/inflight_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace coherefs::agent::vhost_user {
namespace {

constexpr uint32_t kNum = 8;

std::unique_ptr<InflightLog> Reattach(const InflightLog& log) {
  auto attached = InflightLog::Attach(UniqueFd(fcntl(log.fd(), F_DUPFD_CLOEXEC, 0)), kNum);
  EXPECT_TRUE(attached.ok()) << attached.status();
  return attached.ok() ? std::move(*attached) : nullptr;
}

TEST(InflightLogTest, NothingTakenResumesAtTheStart) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(/*last_avail_idx=*/5, /*used_idx=*/5);
  auto again = Reattach(**log);
  InflightLog::Recovered r = again->Recover(5);
  EXPECT_TRUE(r.in_flight.empty());
  EXPECT_TRUE(r.done.empty());
  EXPECT_EQ(r.last_avail_idx, 5);
}

TEST(InflightLogTest, TakenChainsAreServedAgainInOrder) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(0, 0);
  (*log)->MarkTaken(3);
  (*log)->MarkTaken(1);
  (*log)->MarkTaken(6);
  // 1 is served and returned; 3 and 6 are cut off.
  (*log)->MarkDone(1, 40);
  (*log)->BeginPut(1);
  (*log)->EndPut(1, 1);
  InflightLog::Recovered r = Reattach(**log)->Recover(1);
  EXPECT_EQ(r.in_flight, (std::vector<uint16_t>{3, 6}));
  EXPECT_TRUE(r.done.empty());
  EXPECT_EQ(r.last_avail_idx, 3);  // used 1 + in flight 2
}

TEST(InflightLogTest, ServedButNotReturnedIsReturnedAsIs) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(0, 0);
  (*log)->MarkTaken(2);
  (*log)->MarkDone(2, 123);
  InflightLog::Recovered r = Reattach(**log)->Recover(0);
  EXPECT_TRUE(r.in_flight.empty());
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0], (std::pair<uint16_t, uint32_t>{2, 123}));
  EXPECT_EQ(r.last_avail_idx, 1);
}

TEST(InflightLogTest, DeathAfterTheUsedIndexMovedCountsTheReturn) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(0, 0);
  (*log)->MarkTaken(4);
  (*log)->MarkDone(4, 8);
  (*log)->BeginPut(4);
  // The used element and index were published (used idx 1), then death
  // before EndPut: the chain is done, not to be returned twice.
  auto again = Reattach(**log);
  InflightLog::Recovered r = again->Recover(1);
  EXPECT_TRUE(r.in_flight.empty());
  EXPECT_TRUE(r.done.empty());
  EXPECT_EQ(r.last_avail_idx, 1);
  // Recover left the log consistent: recovering again gives the same.
  InflightLog::Recovered r2 = again->Recover(1);
  EXPECT_TRUE(r2.done.empty());
  EXPECT_EQ(r2.last_avail_idx, 1);
}

TEST(InflightLogTest, DeathBeforeTheUsedIndexMovedReturnsIt) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(0, 0);
  (*log)->MarkTaken(4);
  (*log)->MarkDone(4, 8);
  (*log)->BeginPut(4);  // element written, index not yet
  InflightLog::Recovered r = Reattach(**log)->Recover(0);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0].first, 4);
  EXPECT_EQ(r.last_avail_idx, 1);
}

TEST(InflightLogTest, SkippedHeadsAndTheStartOffsetMoveTheAvailIndex) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(/*last_avail_idx=*/0xfffe, /*used_idx=*/0xfffc);  // wraps
  (*log)->MarkSkipped();
  (*log)->MarkTaken(0);
  InflightLog::Recovered r = Reattach(**log)->Recover(0xfffc);
  EXPECT_EQ(r.in_flight, (std::vector<uint16_t>{0}));
  EXPECT_EQ(r.last_avail_idx, 0);  // 0xfffc + 1 in flight + 2 + 1 skipped
}

TEST(InflightLogTest, RetakenHeadForgetsItsOldReply) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  (*log)->Start(0, 0);
  (*log)->MarkTaken(5);
  (*log)->MarkDone(5, 99);
  (*log)->BeginPut(5);
  (*log)->EndPut(5, 1);
  (*log)->MarkTaken(5);  // the driver reuses the descriptor
  InflightLog::Recovered r = Reattach(**log)->Recover(1);
  EXPECT_EQ(r.in_flight, (std::vector<uint16_t>{5}));
  EXPECT_TRUE(r.done.empty());
}

TEST(InflightLogTest, AttachRefusesAForeignOrMisSizedLog) {
  auto log = InflightLog::Create(kNum);
  ASSERT_TRUE(log.ok());
  auto wrong_num =
      InflightLog::Attach(UniqueFd(fcntl((*log)->fd(), F_DUPFD_CLOEXEC, 0)), kNum * 2);
  EXPECT_EQ(wrong_num.status().code(), absl::StatusCode::kDataLoss);
  UniqueFd junk(::memfd_create("junk", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(junk.get(), 64 + 16 * kNum), 0);
  auto foreign = InflightLog::Attach(std::move(junk), kNum);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace coherefs::agent::vhost_user
