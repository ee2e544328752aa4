#include "common/failpoint.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace coherefs {
namespace {

COHEREFS_FAILPOINT_DEFINE(kA, "test.a");
COHEREFS_FAILPOINT_DEFINE(kB, "test.b");

class FailpointTest : public ::testing::Test {
 protected:
  void TearDown() override {
    ASSERT_TRUE(SetFailpoints("test.a=off;test.b=off").ok());
  }
};

TEST_F(FailpointTest, OffByDefault) {
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(kA.Eval().ok());
  EXPECT_EQ(kA.fired(), 0u);
}

TEST_F(FailpointTest, CountThenNextTerm) {
  ASSERT_TRUE(SetFailpoints("test.a=2*off->1*error->off").ok());
  EXPECT_TRUE(kA.Eval().ok());
  EXPECT_TRUE(kA.Eval().ok());
  absl::Status s = kA.Eval();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("test.a"), absl::string_view::npos);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(kA.Eval().ok());
  EXPECT_EQ(kA.fired(), 1u);
  // The other failpoint was never armed.
  EXPECT_TRUE(kB.Eval().ok());
}

TEST_F(FailpointTest, ErrorCodes) {
  ASSERT_TRUE(SetFailpoints("test.a=error(internal);test.b=error(resource_exhausted)").ok());
  EXPECT_EQ(kA.Eval().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(kA.Eval().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(kB.Eval().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(SetFailpoints("test.a=off").ok());
  EXPECT_TRUE(kA.Eval().ok());
  EXPECT_EQ(kB.Eval().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(FailpointTest, Sleep) {
  ASSERT_TRUE(SetFailpoints("test.a=1*sleep(200)").ok());
  absl::Time start = absl::Now();
  EXPECT_TRUE(kA.Eval().ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(195));
  start = absl::Now();
  EXPECT_TRUE(kA.Eval().ok());  // the count ran out
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
}

TEST_F(FailpointTest, Percentage) {
  ASSERT_TRUE(SetFailpoints("test.a=0%error").ok());
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(kA.Eval().ok());
  ASSERT_TRUE(SetFailpoints("test.a=50%error").ok());
  int errors = 0;
  for (int i = 0; i < 1000; ++i) errors += !kA.Eval().ok();
  EXPECT_GT(errors, 300);
  EXPECT_LT(errors, 700);
  // A count only counts hits that fired.
  ASSERT_TRUE(SetFailpoints("test.a=50%3*error->off").ok());
  errors = 0;
  for (int i = 0; i < 1000; ++i) errors += !kA.Eval().ok();
  EXPECT_EQ(errors, 3);
}

TEST_F(FailpointTest, BadSpecsChangeNothing) {
  ASSERT_TRUE(SetFailpoints("test.a=error").ok());
  for (const char* bad :
       {"test.a", "test.a=bogus", "test.a=sleep", "test.a=sleep(x)",
        "test.a=exit(-1)", "test.a=x*panic", "test.a=101%panic",
        "test.a=error(nope)", "=panic", "test.b=off;test.a=panic("}) {
    EXPECT_EQ(SetFailpoints(bad).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(kA.Eval().code(), absl::StatusCode::kUnavailable);
}

TEST_F(FailpointTest, ArmedBeforeDefinedAndUnknownNames) {
  ASSERT_TRUE(SetFailpoints("test.late=1*error;test.typo=panic").ok());
  COHEREFS_FAILPOINT_DEFINE(late, "test.late");
  EXPECT_EQ(late.Eval().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(late.Eval().ok());
  auto unknown = UnknownArmedFailpoints();
  EXPECT_EQ(unknown, std::vector<std::string>{"test.typo"});
  ASSERT_TRUE(SetFailpoints("test.typo=off").ok());
  EXPECT_TRUE(UnknownArmedFailpoints().empty());
  auto defined = DefinedFailpoints();
  EXPECT_NE(std::find(defined.begin(), defined.end(), "test.a"), defined.end());
}

TEST_F(FailpointTest, PanicAborts) {
  ASSERT_TRUE(SetFailpoints("test.a=1*off->panic").ok());
  EXPECT_TRUE(kA.Eval().ok());
  EXPECT_DEATH((void)kA.Eval(), "failpoint fired.*test.a.*panic");
}

TEST_F(FailpointTest, ExitWithCode) {
  ASSERT_TRUE(SetFailpoints("test.b=exit(7)").ok());
  EXPECT_EXIT((void)kB.Eval(), ::testing::ExitedWithCode(7), "test.b");
}

// The environment is read once, before the first failpoint exists: check
// it in a fresh process (a death test re-runs the binary with the env set).
TEST(FailpointEnvTest, EnvArmsAtStart) {
  EXPECT_EXIT(
      {
        setenv("COHEREFS_FAILPOINTS", "test.env=exit(9)", 1);
        execl("/proc/self/exe", "/proc/self/exe",
              "--gtest_filter=FailpointEnvTest.Child", nullptr);
        _exit(1);
      },
      ::testing::ExitedWithCode(9), "");
}

TEST(FailpointEnvTest, Child) {
  // Run alone (by EnvArmsAtStart) with COHEREFS_FAILPOINTS=test.env=exit(9).
  COHEREFS_FAILPOINT_DEFINE(env_fp, "test.env");
  (void)env_fp.Eval();
}

}  // namespace
}  // namespace coherefs
