#include "client/table_reader.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "agent/coherence/version_table.h"
#include "gtest/gtest.h"

namespace coherefs::client {
namespace {

using agent::coherence::VersionTable;

std::unique_ptr<VersionTable> MustCreate(uint32_t capacity) {
  auto table = VersionTable::Create("reader-test", capacity);
  EXPECT_TRUE(table.ok()) << table.status();
  return std::move(table).value();
}

std::string TempDir() {
  const char* env = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(env ? env : "/tmp") + "/tableXXXXXX";
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

// Copies the table's bytes into a regular file, then patches `patch` at
// `offset` (if any) and truncates to `size` (if nonzero).
std::string WriteTableFile(const VersionTable& table, const std::string& dir,
                           const std::string& name, size_t offset = 0,
                           const std::string& patch = "", size_t size = 0) {
  std::string bytes(table.mapping_size(), '\0');
  EXPECT_EQ(pread(table.fd(), bytes.data(), bytes.size(), 0),
            static_cast<ssize_t>(bytes.size()));
  bytes.replace(offset, patch.size(), patch);
  if (size != 0) bytes.resize(size);
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string U32Bytes(uint32_t v) { return std::string(reinterpret_cast<char*>(&v), 4); }

TEST(TableReaderTest, ReadsVersionsAndHeader) {
  auto table = MustCreate(100);
  ASSERT_TRUE(table->Raise(99, 12345).ok());
  ASSERT_TRUE(table->SetSyncState(7, 88, 60).ok());
  TableError error;
  auto reader = TableReader::Open(table->ExportPath(), &error);
  ASSERT_NE(reader, nullptr) << error.message;
  EXPECT_EQ(error.code, TableErrc::kOk);
  EXPECT_EQ(reader->capacity(), 100u);
  uint64_t v = 1;
  ASSERT_TRUE(reader->Version(0, &v, &error));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(reader->Version(99, &v, &error));
  EXPECT_EQ(v, 12345u);
  EXPECT_FALSE(reader->Version(100, &v, &error));
  EXPECT_EQ(error.code, TableErrc::kOutOfRange);

  TableInfo info;
  ASSERT_TRUE(reader->Info(&info, &error));
  EXPECT_EQ(info.layout_version, 1u);
  EXPECT_EQ(info.header_size, 128u);
  EXPECT_EQ(info.capacity, 100u);
  EXPECT_EQ(info.slots_used, 60u);
  EXPECT_EQ(info.epoch, 7u);
  EXPECT_EQ(info.committed_seq, 88u);
  EXPECT_TRUE(info.fenced);  // never cleared
  EXPECT_EQ(info.generation, 2u);
  EXPECT_EQ(info.mapping_size, 4096u);
  EXPECT_EQ(info.mapped_bytes, 4096u);
}

TEST(TableReaderTest, IsCurrentHonoursFence) {
  auto table = MustCreate(4);
  ASSERT_TRUE(table->Raise(1, 5).ok());
  TableError error;
  auto reader = TableReader::Open(table->ExportPath(), &error);
  ASSERT_NE(reader, nullptr) << error.message;
  EXPECT_FALSE(reader->IsCurrent(1, 5));  // fenced until synced
  table->SetFenced(false);
  EXPECT_TRUE(reader->IsCurrent(1, 5));
  EXPECT_FALSE(reader->IsCurrent(1, 4));
  EXPECT_FALSE(reader->IsCurrent(4, 0));  // out of range
  ASSERT_TRUE(table->Raise(1, 6).ok());
  EXPECT_FALSE(reader->IsCurrent(1, 5));
  EXPECT_TRUE(reader->IsCurrent(1, 6));
  table->SetFenced(true);
  EXPECT_FALSE(reader->IsCurrent(1, 6));
}

TEST(TableReaderTest, RefusesBadFiles) {
  auto table = MustCreate(4);
  const std::string dir = TempDir();
  TableError error;

  EXPECT_NE(TableReader::Open(WriteTableFile(*table, dir, "good"), &error),
            nullptr)
      << error.message;

  EXPECT_EQ(TableReader::Open(dir + "/missing", &error), nullptr);
  EXPECT_EQ(error.code, TableErrc::kOpenFailed);
  EXPECT_EQ(error.err, ENOENT);

  EXPECT_EQ(TableReader::Open(
                WriteTableFile(*table, dir, "magic", 0, "COHEREFX"), &error),
            nullptr);
  EXPECT_EQ(error.code, TableErrc::kBadMagic);

  EXPECT_EQ(TableReader::Open(
                WriteTableFile(*table, dir, "layout", 8, U32Bytes(2)), &error),
            nullptr);
  EXPECT_EQ(error.code, TableErrc::kBadLayout);

  EXPECT_EQ(TableReader::Open(
                WriteTableFile(*table, dir, "hsize", 12, U32Bytes(64)), &error),
            nullptr);
  EXPECT_EQ(error.code, TableErrc::kBadLayout);

  // Shorter than the header.
  EXPECT_EQ(TableReader::Open(
                WriteTableFile(*table, dir, "short", 0, "", 100), &error),
            nullptr);
  EXPECT_EQ(error.code, TableErrc::kTooSmall);
  // Capacity claims more slots than the file holds: 128 + 8*497 > 4096.
  EXPECT_EQ(TableReader::Open(
                WriteTableFile(*table, dir, "cap", 16, U32Bytes(497)), &error),
            nullptr);
  EXPECT_EQ(error.code, TableErrc::kTooSmall);
  // Exactly fits: accepted.
  EXPECT_NE(TableReader::Open(
                WriteTableFile(*table, dir, "capfit", 16, U32Bytes(496)),
                &error),
            nullptr);
}

TEST(TableReaderTest, HeaderStuckMidUpdateIsBusy) {
  auto table = MustCreate(4);
  const std::string dir = TempDir();
  // An odd generation that never changes: a writer died mid-update.
  const std::string odd(
      "\x01\x00\x00\x00\x00\x00\x00\x00", 8);
  TableError error;
  auto reader = TableReader::Open(
      WriteTableFile(*table, dir, "odd", 24, odd), &error);
  ASSERT_NE(reader, nullptr) << error.message;
  TableInfo info;
  EXPECT_FALSE(reader->Info(&info, &error));
  EXPECT_EQ(error.code, TableErrc::kBusy);
  EXPECT_FALSE(reader->IsCurrent(0, 0));
  uint64_t v = 1;
  EXPECT_TRUE(reader->Version(0, &v, &error));  // slots stay readable
  EXPECT_EQ(v, 0u);
}

TEST(TableReaderTest, ForkedReaderSeesParentRaises) {
  auto table = MustCreate(64);
  const std::string path = table->ExportPath();
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    TableError error;
    auto reader = TableReader::Open(path, &error);
    if (reader == nullptr) _exit(20);
    uint64_t v = 1;
    if (!reader->Version(33, &v, &error) || v != 0) _exit(21);
    char c = 'r';
    if (write(to_parent[1], &c, 1) != 1) _exit(22);
    if (read(to_child[0], &c, 1) != 1) _exit(23);
    if (!reader->Version(33, &v, &error)) _exit(24);
    TableInfo info;
    if (!reader->Info(&info, &error)) _exit(25);
    _exit(v == 777 && info.committed_seq == 5 && !info.fenced ? 0 : 26);
  }
  char c;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  ASSERT_TRUE(table->Raise(33, 777).ok());
  ASSERT_TRUE(table->SetSyncState(1, 5, 34).ok());
  table->SetFenced(false);
  ASSERT_EQ(write(to_child[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) {
    close(fd);
  }
}

TEST(TableReaderTest, WritingThroughTheReaderMappingFaults) {
  auto table = MustCreate(4);
  const std::string path = table->ExportPath();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);
    TableError error;
    auto reader = TableReader::Open(path, &error);
    if (reader == nullptr) _exit(20);
    uint64_t v;
    if (!reader->Version(0, &v, &error)) _exit(21);
    // The reader's own mapping is PROT_READ: a store through it faults.
    auto* slot0 = reinterpret_cast<volatile uint64_t*>(
        static_cast<char*>(const_cast<void*>(reader->data())) + 128);
    *slot0 = 1;
    _exit(23);  // not reached: the store faults
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  EXPECT_EQ(*table->Load(0), 0u);
}

TEST(TableReaderTest, FindsIvshmemDevicesInSysfs) {
  const std::string dir = TempDir();
  auto add = [&](const std::string& bdf, const char* vendor,
                 const char* device) {
    ASSERT_EQ(mkdir((dir + "/" + bdf).c_str(), 0755), 0);
    std::ofstream(dir + "/" + bdf + "/vendor") << vendor << "\n";
    std::ofstream(dir + "/" + bdf + "/device") << device << "\n";
    std::ofstream(dir + "/" + bdf + "/enable") << "0\n";
  };
  add("0000:00:01.0", "0x8086", "0x29c0");
  add("0000:00:05.0", "0x1af4", "0x1110");
  add("0000:00:03.0", "0x1af4", "0x1110");
  add("0000:00:04.0", "0x1af4", "0x105a");  // vhost-user-fs, not ivshmem
  EXPECT_EQ(FindIvshmemDevices(dir),
            (std::vector<std::string>{"0000:00:03.0", "0000:00:05.0"}));
  std::string path;
  TableError error;
  ASSERT_TRUE(ResolvePciTable("auto", &path, &error, dir));
  EXPECT_EQ(path, dir + "/0000:00:03.0/resource2");
  ASSERT_TRUE(ResolvePciTable("0000:00:05.0", &path, &error, dir));
  EXPECT_EQ(path, dir + "/0000:00:05.0/resource2");
  EXPECT_FALSE(ResolvePciTable("0000:00:09.0", &path, &error, dir));
  EXPECT_EQ(error.code, TableErrc::kNoDevice);
  const std::string empty = TempDir();
  EXPECT_FALSE(ResolvePciTable("auto", &path, &error, empty));
  EXPECT_EQ(error.code, TableErrc::kNoDevice);
}

}  // namespace
}  // namespace coherefs::client
