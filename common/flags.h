// Command-line helpers shared by the daemons and tools.
#ifndef COHEREFS_COMMON_FLAGS_H_
#define COHEREFS_COMMON_FLAGS_H_

#include <string>
#include <vector>

namespace coherefs {

// Abseil flag names are C identifiers (socket_path), while virtiofsd and
// most daemons spell them with dashes (--socket-path). Returns argv with the
// name part of every "--flag-name[=value]" argument spelled with
// underscores, so both spellings work; values and positional arguments are
// untouched, and everything after a bare "--" is left alone.
std::vector<std::string> DashesToUnderscores(int argc, char** argv);

// Owns the strings of a rewritten argv and exposes it as (argc, argv) for
// absl::ParseCommandLine.
class Argv {
 public:
  explicit Argv(std::vector<std::string> args);
  int argc() const { return static_cast<int>(ptrs_.size()) - 1; }
  char** argv() { return ptrs_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> ptrs_;  // args_ pointers plus a trailing nullptr
};

}  // namespace coherefs

#endif  // COHEREFS_COMMON_FLAGS_H_
