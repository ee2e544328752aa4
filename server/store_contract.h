// The Store contract as gtest checks, shared by the tests of every Store
// implementation (memory_store_test.cc, rocksdb_store_test.cc).
#ifndef COHEREFS_SERVER_STORE_CONTRACT_H_
#define COHEREFS_SERVER_STORE_CONTRACT_H_

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store.h"

namespace coherefs::server {

// Writes a volume with three slots and five log entries into an empty store.
inline void WriteSample(Store* store) {
  StoreBatch create;
  create.new_volumes.push_back({"vol", 100});
  create.new_keys.push_back({"vol", "key-a", 0, 10});
  create.new_keys.push_back({"vol", "key-b", 1, 10});
  ASSERT_TRUE(store->Commit(create).ok());
  StoreBatch more;
  more.new_keys.push_back({"vol", std::string("k\0c", 3), 2, 10});
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    more.appends.push_back({"vol", LogEntry{seq, uint32_t(seq % 2), 10 + seq}});
  }
  ASSERT_TRUE(store->Commit(more).ok());
}

// Checks what WriteSample wrote, as loaded by `store`.
inline void CheckSample(Store* store) {
  auto volumes = store->LoadVolumes();
  ASSERT_TRUE(volumes.ok()) << volumes.status();
  ASSERT_EQ(volumes->size(), 1u);
  const StoredVolume& v = (*volumes)[0];
  EXPECT_EQ(v.name, "vol");
  EXPECT_EQ(v.capacity, 100u);
  EXPECT_EQ(v.committed_seq, 5u);
  EXPECT_EQ(v.first_retained_seq, 1u);
  EXPECT_THAT(v.keys, ::testing::ElementsAre("key-a", "key-b",
                                             std::string("k\0c", 3)));
  // Slot 1 got seqs 1, 3, 5 (last 15); slot 0 got 2, 4 (last 14).
  EXPECT_THAT(v.versions, ::testing::ElementsAre(14, 15, 10));

  auto log = store->ReadLog("vol", 2, 2);
  ASSERT_TRUE(log.ok());
  EXPECT_THAT(*log, ::testing::ElementsAre(LogEntry{2, 0, 12},
                                           LogEntry{3, 1, 13}));
  auto tail = store->ReadLog("vol", 4, 100);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->size(), 2u);
  EXPECT_TRUE(store->ReadLog("vol", 6, 100)->empty());
  EXPECT_EQ(store->ReadLog("nope", 1, 1).status().code(),
            absl::StatusCode::kNotFound);
}

inline void CheckCompaction(Store* store) {
  ASSERT_TRUE(store->CompactLog("vol", 4).ok());
  auto log = store->ReadLog("vol", 1, 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].seq, 4u);
  auto volumes = store->LoadVolumes();
  ASSERT_TRUE(volumes.ok());
  EXPECT_EQ((*volumes)[0].first_retained_seq, 4u);
  EXPECT_EQ((*volumes)[0].committed_seq, 5u);
}

inline void CheckEpoch(Store* store) {
  EXPECT_EQ(*store->LoadEpoch(), 0u);
  ASSERT_TRUE(store->SaveEpoch(7).ok());
  EXPECT_EQ(*store->LoadEpoch(), 7u);
}

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_STORE_CONTRACT_H_
