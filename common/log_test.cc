#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace coherefs {
namespace {

// Runs `fn` with stderr redirected to a pipe and returns what it wrote.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fds[0]);
  return out;
}

TEST(LogTest, WritesOneLogfmtLineWithQuotedValues) {
  SetLogLevel(LogLevel::kInfo);
  std::string out = CaptureStderr([] {
    LOG_INFO("agent expired").Kv("agent", "a 1").Kv("ttl_ms", 5000).Kv("ok", true);
  });
  EXPECT_NE(out.find("level=info"), std::string::npos) << out;
  EXPECT_NE(out.find("msg=\"agent expired\""), std::string::npos) << out;
  EXPECT_NE(out.find("agent=\"a 1\""), std::string::npos) << out;
  EXPECT_NE(out.find("ttl_ms=5000"), std::string::npos) << out;
  EXPECT_NE(out.find("ok=true"), std::string::npos) << out;
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);
}

TEST(LogTest, DropsLinesBelowLevelAndEscapesNewlines) {
  SetLogLevel(LogLevel::kWarning);
  std::string out = CaptureStderr([] {
    LOG_INFO("hidden");
    LOG_WARN("shown").Kv("v", "a\nb");
  });
  SetLogLevel(LogLevel::kInfo);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_NE(out.find("v=\"a\\nb\""), std::string::npos) << out;
}

TEST(LogTest, ParsesLevels) {
  LogLevel l;
  EXPECT_TRUE(ParseLogLevel("DEBUG", &l));
  EXPECT_EQ(l, LogLevel::kDebug);
  EXPECT_TRUE(ParseLogLevel("warn", &l));
  EXPECT_EQ(l, LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("loud", &l));
}

}  // namespace
}  // namespace coherefs
