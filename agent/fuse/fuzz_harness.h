// FuzzOne runs one fuzzer input through a fresh Server over a
// FakeFileSystem and checks the reply invariants. Shared by the libFuzzer
// target (server_fuzzer.cc, built by run_fuzz.sh) and the gtest that replays
// fuzz_corpus/ under `bazel test`.
//
// Input format: a sequence of records, at most kMaxRecords:
//   u8 control | u16 little-endian length | `length` request bytes
// control bits 0-1 pick how the request is split into iovecs (whole, two
// pieces, 7-byte pieces, 1-byte pieces), bits 2-4 the reply buffer size
// (0, 15, 16, 40, 100, 300, 4096, 70000 bytes). If the first control byte
// has bit 7 set the harness does not send its own INIT first, so INIT
// itself is fuzzed. A trailing partial record is fed as it is.
//
// Invariants (violations are returned as a description):
// - the reply fits the buffer; len in its header equals the returned count;
// - the unique is the request's; error is 0 or a negative errno > -4096;
// - an error reply is exactly a fuse_out_header;
// - FORGET, BATCH_FORGET, INTERRUPT and short headers get no reply.
// FUZZ_TRACE=1 in the environment prints each request's opcode and errno.
#ifndef COHEREFS_AGENT_FUSE_FUZZ_HARNESS_H_
#define COHEREFS_AGENT_FUSE_FUZZ_HARNESS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace coherefs::agent::fuse {

inline constexpr size_t kMaxRecords = 64;

// "" when every invariant held, else what broke.
std::string FuzzOne(const uint8_t* data, size_t size);

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_FUZZ_HARNESS_H_
