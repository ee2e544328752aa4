// Runs the real coherefs-coordinator binary for multi-process tests: a
// private data directory, --listen=127.0.0.1:0 with --port-file, output to a
// log file. The process is ended by its PID (SIGTERM, then SIGKILL) on
// Stop() and in the destructor; the temp directory is removed at the end.
// Not thread-safe; one test thread drives it.
#ifndef COHEREFS_TESTS_COORDINATOR_COORDINATOR_PROCESS_H_
#define COHEREFS_TESTS_COORDINATOR_COORDINATOR_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace coherefs::testing {

// A fresh directory under $TEST_TMPDIR (or /tmp), removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The path of a binary in this test's runfiles, e.g. "server/coherefs-coordinator".
std::string RunfilePath(const std::string& relative);

// A TCP port on 127.0.0.1 that was free a moment ago.
int PickFreePort();

class CoordinatorProcess {
 public:
  // `data_dir` is kept across restarts; `extra_args` are added to the
  // defaults (--listen, --data-dir, --port-file, --metrics-listen="").
  CoordinatorProcess(std::string data_dir, std::vector<std::string> extra_args);
  ~CoordinatorProcess();

  // Starts the process and waits (up to 20 s) for its port file.
  absl::Status Start();
  // SIGTERM and wait up to 10 s (then SIGKILL). Returns the exit status as
  // waitpid reports it, or -1 if it had to be killed.
  int Stop();
  // SIGKILL and reap.
  void Kill();

  int port() const { return port_; }
  // The running process (-1 when stopped), e.g. to SIGSTOP it: a hung
  // coordinator whose connections stay open.
  pid_t pid() const { return pid_; }
  std::string target() const;
  // The process's stderr/stdout so far (for failure messages).
  std::string Log() const;

 private:
  const std::string data_dir_;
  const std::vector<std::string> extra_args_;
  std::string log_path_;
  std::string port_file_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace coherefs::testing

#endif  // COHEREFS_TESTS_COORDINATOR_COORDINATOR_PROCESS_H_
