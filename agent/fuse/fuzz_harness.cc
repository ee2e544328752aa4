#include "agent/fuse/fuzz_harness.h"

#include <linux/fuse.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/fuse/fake_file_system.h"
#include "agent/fuse/server.h"
#include "common/iov.h"
#include "common/log.h"

namespace coherefs::agent::fuse {
namespace {

constexpr size_t kReplySizes[8] = {0, 15, 16, 40, 100, 300, 4096, 70000};

// Splits `request` into iovecs as the control bits say.
std::vector<iovec> Split(std::string& request, uint8_t mode) {
  std::vector<iovec> iov;
  char* base = request.data();
  const size_t n = request.size();
  size_t piece = mode == 0 ? n : mode == 1 ? (n + 1) / 2 : mode == 2 ? 7 : 1;
  if (piece == 0) piece = 1;
  for (size_t off = 0; off < n; off += piece) {
    iov.push_back({base + off, std::min(piece, n - off)});
  }
  return iov;
}

// FUZZ_TRACE=1 in the environment prints every request's outcome.
const bool trace = std::getenv("FUZZ_TRACE") != nullptr;

std::string RunOne(Server& server, std::string request, uint8_t control) {
  std::vector<iovec> in_iov = Split(request, control & 3);
  const size_t reply_size = kReplySizes[(control >> 2) & 7];
  // The reply buffer in three pieces, the last one the largest.
  std::string reply(reply_size, '\xa5');
  std::vector<iovec> out_iov;
  const size_t a = std::min<size_t>(reply_size, 9);
  const size_t b = std::min<size_t>(reply_size - a, 31);
  out_iov.push_back({reply.data(), a});
  out_iov.push_back({reply.data() + a, b});
  out_iov.push_back({reply.data() + a + b, reply_size - a - b});

  IovReader in(in_iov);
  IovWriter out(out_iov);
  const size_t returned = server.HandleRequest(in, out);

  if (returned > reply_size) return absl::StrCat("reply ", returned, " > buffer ", reply_size);
  if (returned > out.written()) return "reply longer than what was written";
  fuse_in_header h{};
  const bool has_header = request.size() >= sizeof(h);
  if (has_header) std::memcpy(&h, request.data(), sizeof(h));
  const bool no_reply_op = h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET ||
                           h.opcode == FUSE_INTERRUPT || h.opcode == FUSE_NOTIFY_REPLY;
  if (trace) {
    int error = 0;
    if (returned >= sizeof(fuse_out_header)) std::memcpy(&error, reply.data() + 4, sizeof(error));
    std::fprintf(stderr, "fuzz: opcode=%u len=%zu reply=%zu error=%d\n", h.opcode,
                 request.size(), returned, error);
  }
  if (returned == 0) return "";
  if (!has_header) return "reply to a request without a header";
  if (no_reply_op) return absl::StrCat("reply to no-reply opcode ", h.opcode);
  if (returned < sizeof(fuse_out_header)) return "reply shorter than a header";
  fuse_out_header oh;
  std::memcpy(&oh, reply.data(), sizeof(oh));
  if (oh.len != returned) return absl::StrCat("header len ", oh.len, " != ", returned);
  if (oh.unique != h.unique) return "unique mismatch";
  if (oh.error > 0 || oh.error <= -4096) return absl::StrCat("bad error ", oh.error);
  if (oh.error != 0 && oh.len != sizeof(oh)) return "error reply with a body";
  return "";
}

std::string InitRequest() {
  fuse_in_header h{};
  fuse_init_in in{};
  h.len = sizeof(h) + sizeof(in);
  h.opcode = FUSE_INIT;
  h.unique = 1;
  in.major = 7;
  in.minor = 38;
  in.flags = 0xffffffffu;  // everything; the server keeps what it may
  in.flags2 = 0xffffffffu;
  std::string r(reinterpret_cast<char*>(&h), sizeof(h));
  r.append(reinterpret_cast<char*>(&in), sizeof(in));
  return r;
}

}  // namespace

std::string FuzzOne(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    SetLogLevel(LogLevel::kError);  // malformed input is the point here
    return true;
  }();
  (void)quiet;

  // The same tree as server_test: root 1, hello 2, sub 3, sub/a 4, link 5;
  // handles are numbered from 100.
  FakeFileSystem fs;
  InodeId hello = fs.AddFile(kRootInode, "hello", "hello world");
  InodeId sub = fs.AddDir(kRootInode, "sub");
  fs.AddFile(sub, "a", "A");
  fs.AddSymlink(kRootInode, "link", "hello");
  fs.AddXattr(hello, "user.color", "blue");
  fs.set_wanted_flags(FUSE_DO_READDIRPLUS | FUSE_SETXATTR_EXT | FUSE_POSIX_LOCKS);
  Server::Options options;
  options.max_write = 64 << 10;
  Server server(&fs, options);

  if (size == 0 || !(data[0] & 0x80)) {
    std::string failure = RunOne(server, InitRequest(), 6 << 2);
    if (!failure.empty()) return "harness INIT: " + failure;
  }
  size_t pos = 0;
  for (size_t record = 0; record < kMaxRecords && pos < size; ++record) {
    const uint8_t control = data[pos];
    size_t len = 0;
    if (pos + 3 <= size) len = data[pos + 1] | (static_cast<size_t>(data[pos + 2]) << 8);
    pos = std::min(size, pos + 3);
    len = std::min(len, size - pos);
    std::string request(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
    std::string failure = RunOne(server, std::move(request), control);
    if (!failure.empty()) return absl::StrCat("record ", record, ": ", failure);
  }
  server.Shutdown();
  return "";
}

}  // namespace coherefs::agent::fuse
