#include "agent/fuse_session.h"

#include <errno.h>
#include <linux/fuse.h>

#include <utility>

#include "agent/coherence/coherent_fs.h"
#include "common/log.h"

namespace coherefs::agent {
namespace {

class FuseSession final : public fuse::RequestHandler {
 public:
  FuseSession(std::unique_ptr<passthrough::PassthroughFs> fs,
              std::unique_ptr<coherence::CoherentFs> coherent,
              const fuse::Server::Options& options)
      : fs_(std::move(fs)),
        coherent_(std::move(coherent)),
        server_(coherent_ != nullptr ? static_cast<fuse::FileSystem*>(coherent_.get())
                                     : fs_.get(),
                options) {}

  size_t HandleRequest(IovReader& in, IovWriter& out) override {
    return server_.HandleRequest(in, out);
  }
  void Shutdown() override { server_.Shutdown(); }
  absl::Status Resume(const fuse::InitInfo& info) { return server_.Resume(info); }
  fuse::NegotiatedInit Negotiated() const override {
    fuse::InitInfo info = server_.session();
    return {info.major, info.minor, info.max_write};
  }

 private:
  // Declared before server_: the server borrows them and is destroyed
  // first; the coherence layer borrows fs_.
  const std::unique_ptr<passthrough::PassthroughFs> fs_;
  const std::unique_ptr<coherence::CoherentFs> coherent_;
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
    const passthrough::Options& fs_options, const fuse::Server::Options& server_options,
    coherence::VolumeCoherence* coherence, const std::optional<fuse::InitInfo>& resume) {
  auto fs = passthrough::PassthroughFs::Create(fs_options);
  if (!fs.ok()) {
    LOG_ERROR("cannot serve volume; answering EIO")
        .Kv("shared_dir", fs_options.shared_dir)
        .Kv("error", fs.status());
    return std::make_unique<UnavailableSession>();
  }
  if (resume.has_value()) {
    const passthrough::RestoreReport& r = (*fs)->restore_report();
    auto line = r.status.ok() && r.first_error.ok() ? LOG_INFO("node journal restored")
                                                    : LOG_WARN("node journal restored in part");
    line.Kv("nodes", r.nodes)
        .Kv("stale_nodes", r.stale_nodes)
        .Kv("handles", r.handles)
        .Kv("stale_handles", r.stale_handles)
        .Kv("skipped", r.skipped)
        .Kv("incomplete", r.incomplete)
        .Kv("status", r.status)
        .Kv("first_error", r.first_error);
  }
  std::unique_ptr<coherence::CoherentFs> coherent;
  if (coherence != nullptr) {
    passthrough::PassthroughFs* raw = fs->get();
    coherence::CoherentFs::KeySource keys;
    keys.key_of = [raw](fuse::InodeId inode) { return raw->FileKey(inode); };
    keys.child_keys = [raw](fuse::InodeId dir, size_t max) { return raw->ChildKeys(dir, max); };
    coherent = std::make_unique<coherence::CoherentFs>(raw, std::move(keys), coherence);
  }
  auto session =
      std::make_unique<FuseSession>(std::move(*fs), std::move(coherent), server_options);
  if (resume.has_value()) {
    if (absl::Status s = session->Resume(*resume); !s.ok()) {
      LOG_ERROR("cannot resume the FUSE session; answering EIO").Kv("error", s);
      return std::make_unique<UnavailableSession>();
    }
    LOG_INFO("resumed the FUSE session a previous agent process served")
        .Kv("minor", resume->minor)
        .Kv("max_write", resume->max_write);
  }
  return session;
}

}  // namespace coherefs::agent
