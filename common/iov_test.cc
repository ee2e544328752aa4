#include "common/iov.h"

#include <string>

#include "gtest/gtest.h"

namespace coherefs {
namespace {

TEST(IovReaderTest, ReadsAcrossSegmentsAndRefusesShortReads) {
  char a[] = "hel", b[] = "lo w", c[] = "orld";
  IovReader r({{a, 3}, {b, 4}, {c, 4}});
  EXPECT_EQ(r.remaining(), 11u);
  char buf[16] = {};
  ASSERT_TRUE(r.Read(buf, 5));
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_FALSE(r.Read(buf, 7));  // only 6 left
  EXPECT_EQ(r.remaining(), 6u);
  std::vector<iovec> taken;
  ASSERT_TRUE(r.Take(6, &taken));
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(std::string(static_cast<char*>(taken[0].iov_base), taken[0].iov_len), " w");
  EXPECT_EQ(std::string(static_cast<char*>(taken[1].iov_base), taken[1].iov_len), "orld");
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(r.consumed(), 11u);
}

TEST(IovReaderTest, EmptySegmentsAreHarmless) {
  char a[] = "ab";
  IovReader r({{nullptr, 0}, {a, 2}, {nullptr, 0}});
  char buf[2];
  ASSERT_TRUE(r.Read(buf, 2));
  EXPECT_FALSE(r.Read(buf, 1));
  EXPECT_TRUE(r.Skip(0));
}

TEST(IovWriterTest, WritesReservesAndOverwrites) {
  char a[4], b[8];
  IovWriter w({{a, 4}, {b, 8}});
  EXPECT_EQ(w.capacity(), 12u);
  ASSERT_TRUE(w.Write("xxxxx", 5));
  std::vector<iovec> room;
  ASSERT_TRUE(w.Reserve(3, &room));
  ASSERT_EQ(room.size(), 1u);
  memcpy(room[0].iov_base, "abc", 3);
  ASSERT_TRUE(w.Advance(3));
  ASSERT_TRUE(w.Overwrite(2, "HEAD", 4));
  EXPECT_FALSE(w.Overwrite(6, "toolong", 7));
  EXPECT_FALSE(w.Write("12345", 5));  // 4 left
  EXPECT_EQ(w.written(), 8u);
  EXPECT_EQ(std::string(a, 4) + std::string(b, 4), "xxHEADbc");
}

}  // namespace
}  // namespace coherefs
