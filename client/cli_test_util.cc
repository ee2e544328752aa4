#include "client/cli_test_util.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace coherefs::client::testing {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string Runfile(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/coherefs/client/" + name;
}

CliResult RunTool(const std::string& binary, const std::string& args) {
  const std::string tmp = std::getenv("TEST_TMPDIR");
  const std::string out = tmp + "/out", err = tmp + "/err";
  const std::string cmd = Runfile(binary) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  CliResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

}  // namespace coherefs::client::testing
