// Test-only: runs one of this package's command-line tools from the test's
// runfiles and captures its exit code, stdout and stderr (files under
// TEST_TMPDIR). Not thread-safe (one capture file pair per test process).
#ifndef COHEREFS_CLIENT_CLI_TEST_UTIL_H_
#define COHEREFS_CLIENT_CLI_TEST_UTIL_H_

#include <string>

namespace coherefs::client::testing {

struct CliResult {
  int exit_code = -1;  // -1: did not exit normally
  std::string out;
  std::string err;
};

// TEST_SRCDIR/coherefs/client/<name>.
std::string Runfile(const std::string& name);
// `binary` (a runfile of client/) with `args` as a shell would split them.
CliResult RunTool(const std::string& binary, const std::string& args);

}  // namespace coherefs::client::testing

#endif  // COHEREFS_CLIENT_CLI_TEST_UTIL_H_
