// StateStore is the worker's side of the agent supervisor's keep-alive store
// (supervisor.h): named entries, each a small blob and at most one file
// descriptor, that outlive the worker process. The supervisor holds them;
// when a worker dies and the supervisor starts the next one, the new worker
// finds every entry the old one left. This is what makes an agent crash
// invisible to guests: the vhost-user connection, guest memory, eventfds,
// in-flight ring state, version tables and inode maps are kept here, never
// only in the worker's memory (systemd's FDSTORE= has the same idea).
//
// Protocol: a SOCK_SEQPACKET socketpair whose worker end is inherited as
// the fd named by COHEREFS_STATE_FD. At start the supervisor sends every
// entry, then an end marker; later the worker sends PUT and REMOVE
// requests, each acknowledged before Put/Remove return, so state the worker
// relies on is held before it acts on it.
//
// Ownership: Put does not take the caller's fd (the kernel duplicates it in
// transit); Take hands the stored fd to the caller (the supervisor keeps
// its own copy until Remove or a later Put replaces it).
// Thread-safety: every method may be called from any thread.
#ifndef COHEREFS_AGENT_SUPERVISOR_STATE_STORE_H_
#define COHEREFS_AGENT_SUPERVISOR_STATE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"

namespace coherefs::agent::supervisor {

// Names are at most kMaxNameBytes, blobs at most kMaxBlobBytes.
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxBlobBytes = 60 * 1024;
// Environment variables the supervisor sets for its worker.
inline constexpr char kStateFdEnv[] = "COHEREFS_STATE_FD";
inline constexpr char kRestartsEnv[] = "COHEREFS_RESTARTS";
// Of those restarts, how many replaced a live worker on request (SIGUSR2 to
// the supervisor: an upgrade) rather than following a crash.
inline constexpr char kReplacementsEnv[] = "COHEREFS_REPLACEMENTS";

class StateStore {
 public:
  struct Entry {
    std::string blob;
    UniqueFd fd;  // invalid when the entry has none
  };

  // The store of a supervised worker: null (and OK) when COHEREFS_STATE_FD
  // is unset (the agent runs without a supervisor). Reads the entries the
  // supervisor holds; an error if the variable is malformed or the
  // supervisor's hand-over is.
  static absl::StatusOr<std::unique_ptr<StateStore>> FromEnvironment();
  // Over an explicit socket (tests).
  static absl::StatusOr<std::unique_ptr<StateStore>> FromSocket(
      UniqueFd socket, uint32_t restarts);

  // How many times the supervisor has restarted the worker (0 for the first
  // worker): COHEREFS_RESTARTS.
  uint32_t restarts() const { return restarts_; }
  // Of restarts(), those asked for (COHEREFS_REPLACEMENTS; 0 if unset).
  uint32_t replacements() const { return replacements_; }

  // The entry a previous worker left under `name`, handed over once (a
  // second Take of the same name gives nullopt). The supervisor keeps its
  // copy: the entry stays stored.
  std::optional<Entry> Take(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);
  // Names of the handed-over entries not yet taken that start with
  // `prefix`, sorted.
  std::vector<std::string> Names(absl::string_view prefix) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stores `blob` (and a duplicate of `fd` when >= 0) under `name`,
  // replacing what was there. Returns once the supervisor holds it.
  // kInvalidArgument for an empty or oversized name or blob; kUnavailable
  // when the supervisor is gone.
  absl::Status Put(absl::string_view name, absl::string_view blob, int fd = -1)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops `name` and every entry whose name starts with `name` + "/".
  // Returns once the supervisor has dropped them; OK if none existed.
  absl::Status Remove(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  StateStore(UniqueFd socket, uint32_t restarts);
  absl::Status ReadHandOver();
  // Sends one request (protocol.h op) and waits for its ack.
  absl::Status Call(uint32_t op, absl::string_view name, absl::string_view blob, int fd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const UniqueFd socket_;
  const uint32_t restarts_;
  uint32_t replacements_ = 0;
  mutable absl::Mutex mu_;  // also serializes request/ack pairs
  absl::flat_hash_map<std::string, Entry> handed_over_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coherefs::agent::supervisor

#endif  // COHEREFS_AGENT_SUPERVISOR_STATE_STORE_H_
