#include "common/flags.h"

#include "gtest/gtest.h"

namespace coherefs {
namespace {

TEST(FlagsTest, RewritesFlagNamesOnly) {
  const char* in[] = {"prog", "--socket-path=/a-b/c-d.sock", "--log-level", "info",
                      "-thread-pool-size=2", "pos-arg", "--", "--keep-me"};
  auto out = DashesToUnderscores(8, const_cast<char**>(in));
  std::vector<std::string> want = {"prog", "--socket_path=/a-b/c-d.sock", "--log_level",
                                   "info", "-thread_pool_size=2", "pos-arg", "--",
                                   "--keep-me"};
  EXPECT_EQ(out, want);
  Argv argv(out);
  EXPECT_EQ(argv.argc(), 8);
  EXPECT_STREQ(argv.argv()[1], "--socket_path=/a-b/c-d.sock");
  EXPECT_EQ(argv.argv()[8], nullptr);
}

}  // namespace
}  // namespace coherefs
