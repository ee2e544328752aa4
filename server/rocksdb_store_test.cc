#include "server/rocksdb_store.h"

#include <stdio.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "server/store_contract.h"

namespace coherefs::server {
namespace {

class RocksDbStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/rocksdb_store_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern + "/db";
  }
  void TearDown() override {
    std::filesystem::remove_all(std::filesystem::path(dir_).parent_path());
  }

  std::unique_ptr<RocksDbStore> Open() {
    auto store = RocksDbStore::Open(dir_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string dir_;
};

TEST_F(RocksDbStoreTest, EpochSurvivesReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    CheckEpoch(store.get());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->LoadEpoch(), 7u);
}

TEST_F(RocksDbStoreTest, CommitsSurviveReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    WriteSample(store.get());
    CheckSample(store.get());
    EXPECT_GT(store->ApproximateSizeBytes(), 0u);
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  CheckSample(store.get());
}

TEST_F(RocksDbStoreTest, CompactionSurvivesReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    WriteSample(store.get());
    CheckCompaction(store.get());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto log = store->ReadLog("vol", 1, 100);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].seq, 4u);
  EXPECT_EQ((*store->LoadVolumes())[0].first_retained_seq, 4u);
}

TEST_F(RocksDbStoreTest, VolumesDoNotSeeEachOthersKeys) {
  // "v" is a prefix of "v2"; the '\0' separator must keep them apart.
  auto store = Open();
  ASSERT_NE(store, nullptr);
  StoreBatch batch;
  batch.new_volumes.push_back({"v", 4});
  batch.new_volumes.push_back({"v2", 4});
  batch.new_keys.push_back({"v", "a", 0, 1});
  batch.new_keys.push_back({"v2", "b", 0, 2});
  batch.new_keys.push_back({"v2", "c", 1, 2});
  batch.appends.push_back({"v2", LogEntry{1, 1, 3}});
  ASSERT_TRUE(store->Commit(batch).ok());
  auto volumes = store->LoadVolumes();
  ASSERT_TRUE(volumes.ok()) << volumes.status();
  ASSERT_EQ(volumes->size(), 2u);
  EXPECT_EQ((*volumes)[0].keys.size(), 1u);
  EXPECT_EQ((*volumes)[0].committed_seq, 0u);
  EXPECT_EQ((*volumes)[1].keys.size(), 2u);
  EXPECT_EQ((*volumes)[1].versions[1], 3u);
  EXPECT_TRUE(store->ReadLog("v", 1, 10)->empty());
  EXPECT_EQ(store->ReadLog("v2", 1, 10)->size(), 1u);
}

TEST_F(RocksDbStoreTest, SecondOpenOfSameDirectoryFails) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto second = RocksDbStore::Open(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

// The epoch is also kept in COHEREFS_EPOCH: a store whose epoch went back
// (it lost records RocksDB did not notice) refuses; one behind (a crash
// between the store write and the witness) is fine.
TEST_F(RocksDbStoreTest, EpochBehindItsWitnessIsDataLoss) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->SaveEpoch(5).ok());
  }
  auto write_witness = [&](const char* text) {
    FILE* f = fopen((dir_ + "/COHEREFS_EPOCH").c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(text, f);
    fclose(f);
  };
  write_witness("4\n");
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(*store->LoadEpoch(), 5u);
  }
  write_witness("9\n");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto epoch = store->LoadEpoch();
  ASSERT_FALSE(epoch.ok());
  EXPECT_EQ(epoch.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(epoch.status().message().find(dir_), absl::string_view::npos);
}

// Records RocksDB kept while losing others (a truncated MANIFEST drops
// whole SSTs) must not load as a smaller, "valid" store.
TEST_F(RocksDbStoreTest, InconsistentRecordsAreDataLoss) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    WriteSample(store.get());
  }
  auto put_raw = [&](const std::string& key, const std::string& value) {
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
    delete db;
  };
  // committed_seq no longer where the log ends (seq 5).
  put_raw("Cvol", std::string("\0\0\0\0\0\0\0\3", 8));
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    auto volumes = store->LoadVolumes();
    ASSERT_FALSE(volumes.ok());
    EXPECT_EQ(volumes.status().code(), absl::StatusCode::kDataLoss);
  }
  put_raw("Cvol", std::string("\0\0\0\0\0\0\0\5", 8));
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(store->LoadVolumes().ok());
  }
  // A slot of a volume the store does not have.
  put_raw(std::string("Kgone\0\0\0\0\0", 10), "key");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto volumes = store->LoadVolumes();
  ASSERT_FALSE(volumes.ok());
  EXPECT_EQ(volumes.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(volumes.status().message().find("'gone'"), absl::string_view::npos);
}

}  // namespace
}  // namespace coherefs::server
