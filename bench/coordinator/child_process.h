// A child process the benchmark starts (etcd, coherefs-coordinator) and
// must end on every exit path, by its PID.
//
// Start() forks and execs argv[0] (an absolute path) with stdout and stderr
// appended to `log_path`, and asks the kernel to SIGKILL the child if the
// benchmark itself dies (PR_SET_PDEATHSIG), so a crashed or killed benchmark
// leaves no server behind. The destructor calls Stop().
//
// Not thread-safe: one thread owns a ChildProcess. Call Start() from the
// main thread: PR_SET_PDEATHSIG fires when the thread that forked exits.
//
// Errors: Start() returns the errno of fork/open/exec as an absl::Status
// (exec failure is reported through a close-on-exec pipe, so a missing
// binary is an error from Start(), not a silent exit later).
#ifndef COHEREFS_BENCH_COORDINATOR_CHILD_PROCESS_H_
#define COHEREFS_BENCH_COORDINATOR_CHILD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace coherefs::bench {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv (argv[0] an absolute path). FAILED_PRECONDITION if already
  // running; the exec errno (e.g. NOT_FOUND for ENOENT) if exec failed.
  absl::Status Start(const std::vector<std::string>& argv,
                     const std::string& log_path);

  // True while the child has not been reaped.
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Non-blocking: if the child has exited, reaps it and returns its wait
  // status (>= 0); returns -1 if it is still running or was never started.
  int PollExit();

  // Sends SIGTERM, waits up to `grace`, then SIGKILL, and reaps the child.
  // Returns the wait status (or -1 if it was not running). Idempotent.
  int Stop(absl::Duration grace = absl::Seconds(5));

 private:
  pid_t pid_ = -1;
};

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_CHILD_PROCESS_H_
