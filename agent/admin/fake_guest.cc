// fake_guest: plays a guest's QEMU against an agent's vhost-user socket, for
// end-to-end tests of guest state and eviction from another process
// (client/coherectl_e2e_test.py). It connects, negotiates as QEMU 7.2 does
// (the test front end, agent/vhost_user/testing), sends FUSE_INIT as a 7.31
// kernel would and prints one line:
//
//   ready minor=M max_write=W   the session is up (then it waits)
//   refused                     the agent closed the connection at once
//   error MESSAGE               anything else (exit 1)
//
// While ready it waits until the agent closes the connection ("closed",
// exit 0) or --seconds pass ("timeout", exit 1). Usage:
//   fake_guest SOCKET [--seconds=N]
#include <linux/fuse.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "agent/vhost_user/testing/frontend.h"

namespace {

using coherefs::agent::vhost_user::testing::Frontend;
using coherefs::agent::vhost_user::testing::FrontendOptions;
using coherefs::agent::vhost_user::testing::Segment;

int Say(const std::string& line, int rc) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  return rc;
}

int Run(const std::string& socket, int seconds) {
  FrontendOptions options;
  options.num_queues = 2;  // hiprio + one request queue, as QEMU's default
  options.queue_size = 128;
  auto fe = Frontend::Connect(socket, options);
  if (!fe.ok()) return Say("error " + std::string(fe.status().message()), 1);
  absl::Status negotiated = (*fe)->Negotiate();
  if (!negotiated.ok()) {
    if ((*fe)->WaitClosed(absl::Seconds(2))) return Say("refused", 0);
    return Say("error " + std::string(negotiated.message()), 1);
  }
  fuse_init_in in{};
  in.major = 7;
  in.minor = 31;
  in.max_readahead = 1 << 17;
  in.flags = FUSE_BIG_WRITES | FUSE_MAX_PAGES;
  fuse_in_header h{};
  h.len = sizeof(h) + 16;  // a pre-7.36 kernel's INIT
  h.opcode = FUSE_INIT;
  h.unique = 1;
  uint64_t req = (*fe)->Alloc(h.len);
  std::memcpy((*fe)->Host(req), &h, sizeof(h));
  std::memcpy((*fe)->Host(req) + sizeof(h), &in, 16);
  uint64_t reply = (*fe)->Alloc(4096);
  auto head = (*fe)->Post(1, {Segment{req, h.len, false}, Segment{reply, 4096, true}});
  if (!head.ok()) return Say("error " + std::string(head.status().message()), 1);
  (*fe)->Kick(1);
  auto used = (*fe)->WaitUsed(1);
  if (!used.ok()) return Say("error " + std::string(used.status().message()), 1);
  fuse_out_header oh;
  fuse_init_out out;
  std::memcpy(&oh, (*fe)->Host(reply), sizeof(oh));
  std::memcpy(&out, (*fe)->Host(reply) + sizeof(oh), sizeof(out));
  if (oh.error != 0) return Say("error INIT answered " + std::to_string(oh.error), 1);
  Say("ready minor=" + std::to_string(out.minor) + " max_write=" + std::to_string(out.max_write),
      0);
  if ((*fe)->WaitClosed(absl::Seconds(seconds))) return Say("closed", 0);
  return Say("timeout", 1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Say("error usage: fake_guest SOCKET [--seconds=N]", 2);
  int seconds = 30;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--seconds=", 0) != 0 || !absl::SimpleAtoi(arg.substr(10), &seconds)) {
      return Say("error bad argument " + arg, 2);
    }
  }
  return Run(argv[1], seconds);
}
