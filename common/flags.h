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

// Parses the command line with Abseil after DashesToUnderscores, and
// returns the positional arguments (argv[0] first). A flag Abseil cannot
// parse makes the process exit with status 2 (Abseil's own exit status is 1;
// the daemons' contract is 2 for a bad command line), after Abseil printed
// what was wrong.
std::vector<std::string> ParseCommandLineOrExit2(int argc, char** argv);

}  // namespace coherefs

#endif  // COHEREFS_COMMON_FLAGS_H_
