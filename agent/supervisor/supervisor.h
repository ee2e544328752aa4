// The agent supervisor (issue 6, transparent agent restart): the process an
// operator starts as coherefs-agent. It parses no guest input and runs no
// threads; it starts the real agent (the worker: the same binary, same
// argv, re-executed through /proc/self/exe) and keeps, for it, a store of
// named entries — a blob and at most one descriptor each (state_store.h is
// the worker's side, protocol.h the wire format). When the worker dies
// (SIGKILL, crash), the supervisor starts the next one and hands every
// entry over, so vhost-user connections, guest memory, eventfds and ring
// state outlive the crash and QEMU never sees the socket close.
//
// Life cycle:
//   - Each worker gets a fresh SOCK_SEQPACKET socketpair (nothing stale
//     leaks between workers); its end is the descriptor in
//     COHEREFS_STATE_FD, COHEREFS_RESTARTS counts restarts (0 first).
//   - The worker gets PR_SET_PDEATHSIG(SIGKILL): killing the supervisor
//     kills the worker. It is the supervisor's only child, which is how an
//     operator or test finds its pid (and every "worker started" log line
//     names it).
//   - SIGTERM / SIGINT (SIGHUP: as SIGTERM) are forwarded to the worker; the
//     supervisor then exits with the worker's exit code.
//   - Worker exits 0 -> supervisor exits 0; exits 2 (bad configuration) ->
//     2; the first worker exits 1 (could not start) -> 1, no restart.
//     Anything else (a signal, another code, 1 from a restarted worker) ->
//     restart: the first at once, then with exponential backoff while
//     workers keep dying within `quick_crash` of starting; after
//     `max_restarts` restarts within `restart_window`, give up: exit 1.
//   - SIGUSR2 replaces the worker (an upgrade: the binary is exec'd by its
//     path, so a new binary there runs): the worker is SIGKILLed -- the
//     crash path, the one restarts are tested on -- and the next one starts
//     at once with every entry; replacements never back off nor count
//     towards the give-up limit (COHEREFS_REPLACEMENTS tells the worker).
//   - Requests past `max_entries` entries or `max_blob_bytes` blob bytes
//     are refused (kResourceExhausted ack); malformed ones get a
//     kInvalidArgument ack and a rate-limited log line. Neither stops the
//     supervisor.
//
// Call RunSupervisor from main() before any thread exists (it blocks
// signals for signalfd and forks).
#ifndef COHEREFS_AGENT_SUPERVISOR_SUPERVISOR_H_
#define COHEREFS_AGENT_SUPERVISOR_SUPERVISOR_H_

#include <cstddef>
#include <string>

#include "absl/time/time.h"

namespace coherefs::agent::supervisor {

struct SupervisorOptions {
  // The worker binary; default this very binary.
  std::string executable = "/proc/self/exe";
  // Give up after this many restarts within `restart_window`. Default 20 / 60 s.
  int max_restarts = 20;
  absl::Duration restart_window = absl::Seconds(60);
  // Backoff between restarts while workers die within `quick_crash` of
  // starting: none for the first, then `backoff_initial`, doubling up to
  // `backoff_max`. Default 100 ms .. 5 s, quick = 2 s (a worker that served
  // for longer was not crash-looping at start: it is restarted at once).
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(5);
  absl::Duration quick_crash = absl::Seconds(2);
  // Store caps. Default 65,536 entries, 64 MiB of blobs.
  size_t max_entries = 65'536;
  size_t max_blob_bytes = size_t{64} << 20;
};

// Runs the supervisor until it should exit; returns the process exit code
// (0, 1 or 2, or the worker's code after SIGTERM/SIGINT). `argv` is the
// worker's argv (argv[0] included), null-terminated.
int RunSupervisor(char** argv, const SupervisorOptions& options = SupervisorOptions());

}  // namespace coherefs::agent::supervisor

#endif  // COHEREFS_AGENT_SUPERVISOR_SUPERVISOR_H_
