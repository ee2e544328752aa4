#include "server/memory_store.h"

#include "gtest/gtest.h"
#include "server/store_contract.h"

namespace coherefs::server {
namespace {

TEST(MemoryStoreTest, Epoch) {
  MemoryStore store;
  CheckEpoch(&store);
}

TEST(MemoryStoreTest, CommitLoadReadCompact) {
  MemoryStore store;
  WriteSample(&store);
  CheckSample(&store);
  CheckCompaction(&store);
}

TEST(MemoryStoreTest, InjectedFailureWritesNothing) {
  MemoryStore store;
  store.FailNextCommit(absl::UnavailableError("injected"));
  StoreBatch batch;
  batch.new_volumes.push_back({"vol", 1});
  EXPECT_EQ(store.Commit(batch).code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(store.LoadVolumes()->empty());
  EXPECT_TRUE(store.Commit(batch).ok());
  EXPECT_EQ(store.LoadVolumes()->size(), 1u);
}

}  // namespace
}  // namespace coherefs::server
