#include "bench/coordinator/child_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace coherefs::bench {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChildProcessTest, RunsToCompletionWithOutputInLog) {
  const std::string log = TempPath("echo.log");
  ChildProcess child;
  ASSERT_TRUE(child.Start({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, log).ok());
  int status = -1;
  for (int i = 0; i < 500 && status < 0; ++i) {
    status = child.PollExit();
    if (status < 0) absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_FALSE(child.running());
  EXPECT_EQ(ReadAll(log), "out\nerr\n");
}

TEST(ChildProcessTest, StopTerminatesARunningChildByPid) {
  ChildProcess child;
  ASSERT_TRUE(child.Start({"/bin/sleep", "60"}, TempPath("sleep.log")).ok());
  const pid_t pid = child.pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(child.PollExit(), -1);
  int status = child.Stop(absl::Seconds(5));
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_FALSE(child.running());
  // Reaped: the PID no longer names our child.
  EXPECT_EQ(kill(pid, 0), -1);
  EXPECT_EQ(child.Stop(), -1);
}

TEST(ChildProcessTest, StopEscalatesToSigkill) {
  ChildProcess child;
  ASSERT_TRUE(child.Start({"/bin/sh", "-c", "trap '' TERM; exec sleep 60"},
                          TempPath("trap.log"))
                  .ok());
  absl::SleepFor(absl::Milliseconds(200));  // let the shell install the trap
  int status = child.Stop(absl::Milliseconds(300));
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(ChildProcessTest, MissingBinaryIsNotFoundFromStart) {
  ChildProcess child;
  absl::Status s = child.Start({"/nonexistent/coherefs-bench-binary"},
                               TempPath("missing.log"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(child.running());
}

TEST(ChildProcessTest, SecondStartWhileRunningIsFailedPrecondition) {
  ChildProcess child;
  ASSERT_TRUE(child.Start({"/bin/sleep", "60"}, TempPath("twice.log")).ok());
  EXPECT_EQ(child.Start({"/bin/sleep", "60"}, TempPath("twice.log")).code(),
            absl::StatusCode::kFailedPrecondition);
  child.Stop();
}

}  // namespace
}  // namespace coherefs::bench
