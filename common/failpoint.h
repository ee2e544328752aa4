// Failpoints: named places in the code where a test can make the process
// fail on purpose, in the spirit of etcd's gofail. They are compiled into
// every build and off by default; an unarmed failpoint costs one relaxed
// atomic load.
//
//   COHEREFS_FAILPOINT_DEFINE(kBeforeSync, "store.commit.before_sync");
//   ...
//   RETURN_IF_ERROR(kBeforeSync.Eval());
//
// Arming. At start (the first failpoint's static initialisation) the
// environment variable COHEREFS_FAILPOINTS is read:
//   COHEREFS_FAILPOINTS="name=terms[;name=terms]..."
//   terms   := term ["->" term]...       evaluated left to right
//   term    := [P "%"] [N "*"] action
//   action  := off | panic | exit(CODE) | sleep(MS) | error[(CODE)]
// A term with "N*" applies to the next N hits, then the next term takes
// over; a term without a count applies to every later hit. "P%" makes a hit
// fire with probability P (a hit that does not fire is not counted).
//   panic       log one line, abort() (SIGABRT: like a crash, no cleanup)
//   exit(CODE)  log one line, _exit(CODE)
//   sleep(MS)   sleep MS milliseconds, then continue normally
//   error       Eval() returns UNAVAILABLE (the site fails its operation);
//               error(internal|unavailable|resource_exhausted) picks the code
//   off         nothing (useful as "N*off->panic": the (N+1)-th hit panics)
// Example: "store.commit.after_sync=20*off->panic" aborts the process right
// after the 21st durable commit, before any caller hears of it.
// There is no runtime re-arming from outside the process; tests in the same
// process call SetFailpoints(). tests/faults/README.md lists every failpoint
// in the tree.
//
// Thread-safety: all functions and Eval() are thread-safe. A Failpoint must
// have static storage duration (define it with COHEREFS_FAILPOINT_DEFINE at
// namespace scope); its name must be a string literal.
#ifndef COHEREFS_COMMON_FAILPOINT_H_
#define COHEREFS_COMMON_FAILPOINT_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace coherefs {

class Failpoint {
 public:
  explicit Failpoint(const char* name);
  Failpoint(const Failpoint&) = delete;
  Failpoint& operator=(const Failpoint&) = delete;

  // OK unless the failpoint is armed and its current term says otherwise
  // (see the file comment). May sleep, abort or exit the process.
  absl::Status Eval() {
    if (ABSL_PREDICT_TRUE(!armed_.load(std::memory_order_relaxed))) {
      return absl::OkStatus();
    }
    return EvalSlow();
  }

  const char* name() const { return name_; }
  // Hits whose action was not "off" since the failpoint was last armed.
  uint64_t fired();

  // One parsed term (public for the parser; not part of the contract).
  struct Term {
    enum class Action { kOff, kPanic, kExit, kSleep, kError };
    Action action = Action::kOff;
    int64_t arg = 0;     // exit code, milliseconds, or absl::StatusCode
    int64_t count = -1;  // hits left for this term; -1: every hit
    int percent = 100;
  };
  // Replaces the terms (empty: disarm).
  void Arm(std::vector<Term> terms);

 private:
  absl::Status EvalSlow();

  const char* const name_;
  std::atomic<bool> armed_{false};
  absl::Mutex mu_;
  std::vector<Term> terms_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fired_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rng_ ABSL_GUARDED_BY(mu_) = 0x9E3779B97F4A7C15ull;
};

// Arms (or, with "off", disarms) the failpoints named in `spec` (the
// COHEREFS_FAILPOINTS syntax). Names not (yet) defined are remembered and
// armed when their failpoint is constructed. InvalidArgument on a syntax
// error; then nothing is changed.
absl::Status SetFailpoints(absl::string_view spec);

// The names of every failpoint defined in this process, sorted.
std::vector<std::string> DefinedFailpoints();

// Names armed through SetFailpoints/COHEREFS_FAILPOINTS that no failpoint
// in this process carries (typically a typo), sorted.
std::vector<std::string> UnknownArmedFailpoints();

}  // namespace coherefs

#define COHEREFS_FAILPOINT_DEFINE(var, name) \
  static ::coherefs::Failpoint var(name)

#endif  // COHEREFS_COMMON_FAILPOINT_H_
