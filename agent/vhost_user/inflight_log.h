// InflightLog records, in shared memory that outlives the back end's
// process, which descriptor chains of one split virtqueue were taken from
// the available ring and not yet returned on the used ring -- the idea of
// the vhost-user spec's "inflight I/O tracking" (VHOST_USER_GET_INFLIGHT_FD),
// kept on the back end's side because QEMU's vhost-user-fs does not offer
// it. A back end that died mid-request is followed by one that reads the log
// and (1) serves again the chains that were in flight, in the order they
// were taken, and (2) resumes the available ring where the dead one stopped:
//
//   last_avail_idx = used idx (from the ring) + chains in flight + `extra`
//
// where `extra` counts available entries consumed without being in flight
// or on the used ring (the ring's start offset and heads out of range).
//
// Crash consistency: the process may die between any two stores. Taking a
// chain marks it before it is served (a death before the mark re-reads it
// from the ring). Returning one is bracketed (BeginPut: remember the head;
// the used element and index are written; EndPut: unmark, record the used
// idx): a death between the used-index store and EndPut shows as a used idx
// that differs from the recorded one, and Recover unmarks the remembered
// head. The guest's own writes to the used ring can only hurt the guest.
//
// A chain whose request was served but not yet returned is marked done with
// its reply length (MarkDone): a resumed ring returns it as it is instead of
// serving it again, so only a request cut off while being served runs
// twice.
//
// Layout (memfd, host-endian, private to the back end): a 64-byte header
// {magic, num, used_idx, last_head, extra, counter}, num u64 stamps, one
// per head (0 = not in flight, else the order in which it was taken), and
// num u64 done words (bit 63: served; low 32 bits: reply length).
//
// Threading: MarkTaken/MarkSkipped belong to the ring's popping thread;
// BeginPut/EndPut are called under the ring's push lock. Not copyable.
#ifndef COHEREFS_AGENT_VHOST_USER_INFLIGHT_LOG_H_
#define COHEREFS_AGENT_VHOST_USER_INFLIGHT_LOG_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace coherefs::agent::vhost_user {

class InflightLog {
 public:
  // A new, empty log for a ring of `num` entries in a fresh memfd.
  static absl::StatusOr<std::unique_ptr<InflightLog>> Create(uint32_t num);
  // Maps the log a previous process left in `fd`. kDataLoss when it is not
  // a log for `num` entries (wrong size or header).
  static absl::StatusOr<std::unique_ptr<InflightLog>> Attach(UniqueFd fd,
                                                             uint32_t num);
  ~InflightLog();
  InflightLog(const InflightLog&) = delete;
  InflightLog& operator=(const InflightLog&) = delete;

  int fd() const { return fd_.get(); }
  uint32_t num() const { return num_; }

  // The ring starts (again) at `last_avail_idx` with nothing in flight and
  // the used ring at `used_idx`.
  void Start(uint16_t last_avail_idx, uint16_t used_idx);

  // Where a resumed ring continues: the chains to serve again (heads, in
  // the order they were taken) and the next available index.
  struct Recovered {
    std::vector<std::pair<uint16_t, uint32_t>> done;  // (head, length): return as is
    std::vector<uint16_t> in_flight;                  // serve again
    uint16_t last_avail_idx = 0;
  };
  // Repairs a return the dead process left half done, given the ring's used
  // idx now, and says where to continue. Leaves the log consistent.
  Recovered Recover(uint16_t used_idx);

  void MarkTaken(uint16_t head);
  // The chain's request was served; its reply is `len` bytes. Any thread
  // (the one that served it).
  void MarkDone(uint16_t head, uint32_t len);
  // An available entry consumed that will never reach the used ring.
  void MarkSkipped();
  void BeginPut(uint16_t head);
  void EndPut(uint16_t head, uint16_t new_used_idx);

 private:
  struct Header;
  InflightLog(UniqueFd fd, void* base, size_t size, uint32_t num);
  Header* header() const;
  uint64_t* stamps() const;
  uint64_t* done() const;

  const UniqueFd fd_;
  void* const base_;
  const size_t size_;
  const uint32_t num_;
};

}  // namespace coherefs::agent::vhost_user

#endif  // COHEREFS_AGENT_VHOST_USER_INFLIGHT_LOG_H_
