#include "common/log.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace coherefs {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

absl::Mutex g_component_mu;
std::string* g_component ABSL_GUARDED_BY(g_component_mu) = nullptr;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  }
  return false;
}

void AppendValue(std::string* out, absl::string_view v) {
  if (!NeedsQuotes(v)) {
    out->append(v.data(), v.size());
    return;
  }
  out->push_back('"');
  for (char c : v) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

absl::string_view Basename(const char* file) {
  absl::string_view f(file);
  auto pos = f.rfind('/');
  return pos == absl::string_view::npos ? f : f.substr(pos + 1);
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "debug" || t == "trace") {
    *level = LogLevel::kDebug;
  } else if (t == "info") {
    *level = LogLevel::kInfo;
  } else if (t == "warn" || t == "warning") {
    *level = LogLevel::kWarning;
  } else if (t == "error" || t == "off") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

void SetLogComponent(absl::string_view component) {
  absl::MutexLock lock(&g_component_mu);
  delete g_component;
  g_component = new std::string(component);
}

LogLine::LogLine(LogLevel level, const char* file, int line, absl::string_view msg)
    : enabled_(static_cast<int>(level) >= g_level.load(std::memory_order_relaxed)) {
  if (!enabled_) return;
  buf_.reserve(256);
  absl::StrAppend(&buf_, "ts=",
                  absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
                  " level=", LevelName(level));
  {
    absl::MutexLock lock(&g_component_mu);
    if (g_component != nullptr && !g_component->empty()) {
      absl::StrAppend(&buf_, " component=", *g_component);
    }
  }
  absl::StrAppend(&buf_, " src=", Basename(file), ":", line, " msg=");
  AppendValue(&buf_, msg);
}

LogLine& LogLine::Kv(absl::string_view key, absl::string_view value) {
  if (!enabled_) return *this;
  absl::StrAppend(&buf_, " ", key, "=");
  AppendValue(&buf_, value);
  return *this;
}

LogLine& LogLine::KvRaw(absl::string_view key, absl::string_view value) {
  return Kv(key, value);
}

LogLine::~LogLine() {
  if (!enabled_) return;
  buf_.push_back('\n');
  const char* p = buf_.data();
  size_t left = buf_.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;  // stderr gone: nothing sensible to do
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace coherefs
