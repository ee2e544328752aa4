// Structured logging in logfmt: one line per event, written with a single
// write(2) to stderr so lines from many threads never interleave.
//
//   LOG_INFO("agent expired").Kv("agent", id).Kv("ttl_ms", 5000);
//
// prints
//   ts=2026-11-25T18:00:00.123456Z level=info src=core.cc:42 msg="agent expired" agent=a1 ttl_ms=5000
//
// The line is emitted when the temporary is destroyed (end of statement).
// Thread-safe. The level and component are process-wide settings.
#ifndef COHEREFS_COMMON_LOG_H_
#define COHEREFS_COMMON_LOG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace coherefs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below `level` are dropped. Default kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Accepts debug, info, warn, warning, error (any case).
bool ParseLogLevel(absl::string_view text, LogLevel* level);
// Process-wide `component=` field on every line; empty (the default) omits it.
void SetLogComponent(absl::string_view component);

class LogLine {
 public:
  LogLine(LogLevel level, const char* file, int line, absl::string_view msg);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& Kv(absl::string_view key, absl::string_view value);
  LogLine& Kv(absl::string_view key, const char* value) {
    return Kv(key, absl::string_view(value));
  }
  LogLine& Kv(absl::string_view key, const std::string& value) {
    return Kv(key, absl::string_view(value));
  }
  LogLine& Kv(absl::string_view key, const absl::Status& status) {
    return Kv(key, status.ToString());
  }
  LogLine& Kv(absl::string_view key, bool value) {
    return Kv(key, value ? "true" : "false");
  }
  template <typename T>
  LogLine& Kv(absl::string_view key, T value) {
    return KvRaw(key, absl::StrCat(value));
  }

 private:
  LogLine& KvRaw(absl::string_view key, absl::string_view value);

  bool enabled_;
  std::string buf_;
};

}  // namespace coherefs

#define COHEREFS_LOG_(level, msg) \
  ::coherefs::LogLine(level, __FILE__, __LINE__, msg)
#define LOG_DEBUG(msg) COHEREFS_LOG_(::coherefs::LogLevel::kDebug, msg)
#define LOG_INFO(msg) COHEREFS_LOG_(::coherefs::LogLevel::kInfo, msg)
#define LOG_WARN(msg) COHEREFS_LOG_(::coherefs::LogLevel::kWarning, msg)
#define LOG_ERROR(msg) COHEREFS_LOG_(::coherefs::LogLevel::kError, msg)

#endif  // COHEREFS_COMMON_LOG_H_
