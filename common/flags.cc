#include "common/flags.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>

#include "absl/flags/parse.h"

namespace coherefs {

std::vector<std::string> DashesToUnderscores(int argc, char** argv) {
  std::vector<std::string> out;
  bool positional_only = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && !positional_only && arg == "--") {
      positional_only = true;
    } else if (i > 0 && !positional_only && arg.size() > 2 && arg[0] == '-') {
      size_t start = arg[1] == '-' ? 2 : 1;
      size_t end = arg.find('=');
      if (end == std::string::npos) end = arg.size();
      for (size_t j = start; j < end; ++j) {
        if (arg[j] == '-') arg[j] = '_';
      }
    }
    out.push_back(std::move(arg));
  }
  return out;
}

Argv::Argv(std::vector<std::string> args) : args_(std::move(args)) {
  for (std::string& a : args_) ptrs_.push_back(a.data());
  ptrs_.push_back(nullptr);
}

namespace {

std::atomic<bool> g_parsing_flags{false};

void ExitTwoOnFlagError() {
  if (g_parsing_flags.load()) _exit(2);
}

}  // namespace

std::vector<std::string> ParseCommandLineOrExit2(int argc, char** argv) {
  g_parsing_flags = true;
  atexit(ExitTwoOnFlagError);
  Argv args(DashesToUnderscores(argc, argv));
  std::vector<char*> rest = absl::ParseCommandLine(args.argc(), args.argv());
  g_parsing_flags = false;
  return std::vector<std::string>(rest.begin(), rest.end());
}

}  // namespace coherefs
