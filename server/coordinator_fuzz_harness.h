// FuzzCoordinatorOne runs one fuzzer input as a sequence of coordinator
// requests against a fresh CoherenceCore -- the calls the gRPC handlers in
// coordinator_service.cc make; that adapter only copies message fields and
// converts statuses -- over a MemoryStore or a real RocksDbStore, and checks
// the contract of proto/coherefs/v1/coordinator.proto as it goes. Shared by
// the libFuzzer targets (coordinator_fuzzer.cc, coordinator_rocksdb_fuzzer.cc;
// built by server/run_fuzz.sh) and coordinator_fuzz_corpus_test, which
// replays fuzz_corpus/ under `bazel test`.
//
// Input: one config byte, then at most kMaxCoordinatorOps operations, each
// an op byte followed by its operands; a missing operand byte reads as 0.
//   config  bits 0-1 subscriber queue limit {65536,1,3,16}, bit 2 delivery
//           batch {1024,2}, bit 3 log retention {1000000,3} entries; other
//           bits ignored. Inputs with the same config share one store and
//           core (a "world"), each in its own namespace of names.
//   op      bits 0-3 the request (see kOpNames in the .cc), bit 4 "wait"
//           for the reply of a CreateVolume, Resolve or Bump before the
//           next op (without it, requests overlap and share group
//           commits; other requests always complete inline), bits 5-7
//           request flags (e.g. strict Bump).
//           Restart is the byte 0x0F exactly, at most twice per input; any
//           other byte with low bits 1111 is a Sync.
// Names, keys, slots, counts and sequence numbers are decoded from small
// domains (v0..v2, a0..a2, 24 keys, slots near slots_used) with escapes to
// invalid and extreme values (empty, oversized, 4096- and 4097-element
// batches -- one such count per input, later ones read as small --
// arbitrary u32/u64), so mutations reach both deep state and validation.
// make_coordinator_fuzz_corpus.py writes the seeds with the same encoding.
//
// Invariants (a violation is returned as a description):
// - every status code is one the proto allows for that call; invalid input
//   gets INVALID_ARGUMENT exactly, valid input never does; UNAVAILABLE only
//   for strict bumps cut short by shutdown; NOT_FOUND only for volumes and
//   agents the model does not know;
// - a key keeps its slot forever (also across restarts); distinct keys get
//   distinct, dense slots; slots_used and capacity match the model;
// - versions only grow: every read (Resolve, Snapshot) is at least every
//   version acknowledged before it was issued; a bump's version is above
//   them and in the current epoch; one seq maps to one (slot, version);
//   per slot, versions grow with seq;
// - seqs are dense: when every seq is known, the table equals the last
//   logged version of each slot and committed_seq the last seq;
// - subscriptions: a hello first, then gap-free batches that match the
//   bumps, at most the delivery batch each; after a quiet point every live
//   stream has delivered up to committed_seq; ResyncRequired only for a
//   compacted seq; the stream ends only for a reason the proto lists;
// - a restart (Stop, reopen the store, Start) keeps every version, slot and
//   committed_seq and moves to the next epoch.
// FUZZ_TRACE=1 in the environment prints each request and its status.
#ifndef COHEREFS_SERVER_COORDINATOR_FUZZ_HARNESS_H_
#define COHEREFS_SERVER_COORDINATOR_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace coherefs::server {

inline constexpr size_t kMaxCoordinatorOps = 64;

enum class FuzzStoreKind { kMemory, kRocksDb };

struct CoordinatorFuzzOptions {
  FuzzStoreKind store = FuzzStoreKind::kMemory;
  // kRocksDb: each world (see the .cc) gets a database in a new directory
  // below this one (default: $TMPDIR or /tmp), removed when the world is
  // replaced; the last ones stay until the process exits.
  std::string scratch_dir;
};

// "" when every invariant held, else what broke.
std::string FuzzCoordinatorOne(const uint8_t* data, size_t size,
                               const CoordinatorFuzzOptions& options);

}  // namespace coherefs::server

#endif  // COHEREFS_SERVER_COORDINATOR_FUZZ_HARNESS_H_
