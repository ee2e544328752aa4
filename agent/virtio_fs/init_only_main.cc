// init_only_server: serves a virtio-fs socket with a handler that answers
// FUSE_INIT and replies -ENOSYS to everything else. It exists to check the
// vhost-user negotiation against a real QEMU (qemu_smoke.sh); it is not the
// agent.
//
//   [INIT_ONLY_DEBUG=1] init_only_server SOCKET_PATH [TAG]
// Runs until SIGINT/SIGTERM, then prints the device counters.
#include <linux/fuse.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "agent/virtio_fs/device.h"
#include "common/log.h"

namespace {

class InitOnly : public coherefs::agent::fuse::RequestHandler {
 public:
  size_t HandleRequest(coherefs::IovReader& in,
                       coherefs::IovWriter& out) override {
    fuse_in_header h;
    if (!in.ReadObj(&h)) return 0;
    if (h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET) return 0;
    LOG_INFO("fuse request").Kv("opcode", h.opcode).Kv("unique", h.unique);
    if (h.opcode == FUSE_INIT) {
      fuse_init_in init_in{};
      // Older kernels send the short (pre-7.36) fuse_init_in.
      size_t n = std::min(in.remaining(), sizeof(init_in));
      in.Read(&init_in, n);
      LOG_INFO("FUSE_INIT")
          .Kv("major", init_in.major)
          .Kv("minor", init_in.minor)
          .Kv("flags", init_in.flags);
      fuse_init_out o{};
      o.major = FUSE_KERNEL_VERSION;
      o.minor = std::min<uint32_t>(init_in.minor, FUSE_KERNEL_MINOR_VERSION);
      o.max_readahead = init_in.max_readahead;
      o.max_write = 128 * 1024;
      o.max_background = 16;
      o.congestion_threshold = 12;
      o.time_gran = 1;
      fuse_out_header oh{static_cast<uint32_t>(sizeof(oh) + sizeof(o)), 0,
                         h.unique};
      if (!out.WriteObj(oh) || !out.WriteObj(o)) return 0;
      return out.written();
    }
    fuse_out_header oh{sizeof(oh), -ENOSYS, h.unique};
    return out.WriteObj(oh) ? out.written() : 0;
  }
  void Shutdown() override { LOG_INFO("session shut down"); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET_PATH [TAG]\n", argv[0]);
    return 2;
  }
  coherefs::SetLogComponent("init_only_server");
  // INIT_ONLY_DEBUG=1 logs every vhost-user request QEMU sends.
  if (const char* d = std::getenv("INIT_ONLY_DEBUG"); d != nullptr && *d == '1') {
    coherefs::SetLogLevel(coherefs::LogLevel::kDebug);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // Block before threads start so only sigwait sees them.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  coherefs::agent::virtio_fs::DeviceOptions options;
  options.tag = argc > 2 ? argv[2] : "coherefs";
  options.num_request_queues = 1;
  options.thread_pool_size = 2;
  auto server = coherefs::agent::virtio_fs::Server::Start(
      argv[1], options, [] { return std::make_unique<InitOnly>(); });
  if (!server.ok()) {
    LOG_ERROR("cannot start").Kv("error", server.status());
    return 1;
  }
  int sig = 0;
  sigwait(&set, &sig);
  (*server)->Stop();
  auto m = (*server)->Metrics();
  LOG_INFO("stopped")
      .Kv("connections", m.connections)
      .Kv("requests", m.requests)
      .Kv("bad_chains", m.bad_chains)
      .Kv("bad_messages", m.bad_messages)
      .Kv("bytes_in", m.bytes_in)
      .Kv("bytes_out", m.bytes_out);
  return 0;
}
