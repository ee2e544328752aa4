#include "agent/fuse_session.h"

#include <errno.h>
#include <linux/fuse.h>

#include <utility>

#include "common/log.h"

namespace coherefs::agent {
namespace {

class FuseSession final : public fuse::RequestHandler {
 public:
  FuseSession(std::unique_ptr<passthrough::PassthroughFs> fs,
              const fuse::Server::Options& options)
      : fs_(std::move(fs)), server_(fs_.get(), options) {}

  size_t HandleRequest(IovReader& in, IovWriter& out) override {
    return server_.HandleRequest(in, out);
  }
  void Shutdown() override { server_.Shutdown(); }

 private:
  // Declared before server_: the server borrows it and is destroyed first.
  const std::unique_ptr<passthrough::PassthroughFs> fs_;
  fuse::Server server_;
};

// Answers every request that carries a header with EIO; FORGETs and
// INTERRUPTs, which take no reply, get none.
class UnavailableSession final : public fuse::RequestHandler {
 public:
  size_t HandleRequest(IovReader& in, IovWriter& out) override {
    fuse_in_header header;
    if (!in.ReadObj(&header)) return 0;
    if (header.opcode == FUSE_FORGET || header.opcode == FUSE_BATCH_FORGET ||
        header.opcode == FUSE_INTERRUPT) {
      return 0;
    }
    fuse_out_header reply{};
    reply.len = sizeof(reply);
    reply.error = -EIO;
    reply.unique = header.unique;
    return out.WriteObj(reply) ? sizeof(reply) : 0;
  }
};

}  // namespace

std::unique_ptr<fuse::RequestHandler> NewFuseSession(
    const passthrough::Options& fs_options, const fuse::Server::Options& server_options) {
  auto fs = passthrough::PassthroughFs::Create(fs_options);
  if (!fs.ok()) {
    LOG_ERROR("cannot serve volume; answering EIO")
        .Kv("shared_dir", fs_options.shared_dir)
        .Kv("error", fs.status());
    return std::make_unique<UnavailableSession>();
  }
  return std::make_unique<FuseSession>(std::move(*fs), server_options);
}

}  // namespace coherefs::agent
