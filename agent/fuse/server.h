// Server is the FUSE protocol server: it decodes one request from an
// IovReader (fuse_in_header, the opcode's argument struct, NUL-terminated
// names, payload), calls the FileSystem, and encodes the reply
// (fuse_out_header + body) into an IovWriter. It knows nothing of
// virtqueues or /dev/fuse; transports reach it through RequestHandler.
//
// ABI: the structs of the installed <linux/fuse.h>, FUSE 7.38
// (FUSE_KERNEL_MINOR_VERSION). INIT negotiates min(7.38, the peer's minor);
// peers older than 7.12 are refused with EPROTO, because older minors used
// shorter argument structs (mknod_in, create_in, write_in) we do not decode.
// A peer with a newer major gets the 8-byte {7, 38} reply and may retry
// INIT (fuse.h "major version" rules); an older major gets EPROTO.
//
// Session rules:
// - FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY never get a reply
//   (HandleRequest returns 0). INTERRUPT is ignored: a request runs to the
//   end and then replies.
// - Before INIT every other request is answered EIO. A second INIT gets
//   EPROTO.
// - DESTROY (and Shutdown()) calls FileSystem::Destroy and returns the
//   session to "before INIT": a virtio-fs guest that unmounts and mounts
//   again sends a fresh INIT on the same device.
// - Offered INIT flags: (FileSystem::WantedInitFlags() | FUSE_MAX_PAGES |
//   FUSE_BIG_WRITES | FUSE_INIT_EXT) ∩ the peer's, minus what this server
//   cannot decode (FUSE_SECURITY_CTX request extensions, DAX mapping).
//
// Malformed requests (all answered with the request's unique when the
// header could be read; a header shorter than fuse_in_header gets no reply):
// - header len != bytes that arrived, or len < sizeof(fuse_in_header), or
//   extension length beyond len: EINVAL
// - argument struct shorter than the opcode needs: EINVAL
// - name without NUL within the request, empty, ".", ".." (except LOOKUP),
//   or containing '/': EINVAL; longer than 255 bytes: ENAMETOOLONG
//   (symlink targets: 4095; xattr names: ERANGE beyond 255 or empty)
// - unknown or unsupported opcode (IOCTL, POLL, BMAP, SETUPMAPPING, SYNCFS,
//   TMPFILE, ...): ENOSYS
// - a reply that does not fit the IovWriter: ERANGE, except READDIR(PLUS),
//   which fills what fits. READ is not truncated: a short READ means EOF to
//   Linux (it would shrink the cached file size), so it gets ERANGE.
// - the FileSystem's errors: the errno ErrnoFromStatus gives (EIO if none).
//
// Ownership: the Server borrows the FileSystem (and Options::stats, if
// set), which must outlive it.
// Thread-safety: HandleRequest and Shutdown may run concurrently from any
// number of threads; the session state is guarded by a mutex, and the
// FileSystem is thread-safe by its contract.
#ifndef COHEREFS_AGENT_FUSE_SERVER_H_
#define COHEREFS_AGENT_FUSE_SERVER_H_

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/fuse/file_system.h"
#include "agent/fuse/op_stats.h"
#include "agent/fuse/request_handler.h"
#include "common/iov.h"

namespace coherefs::agent::fuse {

class Server final : public RequestHandler {
 public:
  static constexpr uint32_t kMajor = FUSE_KERNEL_VERSION;           // 7
  static constexpr uint32_t kMaxMinor = FUSE_KERNEL_MINOR_VERSION;  // 38
  static constexpr uint32_t kMinMinor = 12;
  // Flags the server itself handles, offered whatever the FileSystem wants.
  static constexpr uint64_t kServerFlags = FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT;
  // Flags never offered: request extensions and DAX windows are not decoded.
  // (FUSE_INIT_RESERVED is spelled out: fuse.h's (1 << 31) is a negative
  // int that would sign-extend over the high 32 bits.)
  static constexpr uint64_t kUnsupportedFlags =
      FUSE_SECURITY_CTX | FUSE_HAS_INODE_DAX | FUSE_MAP_ALIGNMENT | (1ull << 31);
  // Bytes a WRITE request carries besides its payload; a transport's request
  // buffer must hold max_write + this (Linux's /dev/fuse insists on it).
  static constexpr size_t kWriteOverhead = sizeof(fuse_in_header) + sizeof(fuse_write_in);

  struct Options {
    // Largest WRITE payload and READ size (fuse_init_out.max_write;
    // max_pages = max_write / 4096). Default 1 MiB, Linux's default
    // max_pages limit (256). Clamped to [4096, 16 MiB]. The transport's
    // buffers must hold max_write + kWriteOverhead.
    uint32_t max_write = 1 << 20;
    // fuse_init_out.max_background / congestion_threshold. Defaults 64 / 48.
    uint16_t max_background = 64;
    uint16_t congestion_threshold = 48;
    // Where per-opcode counts go. nullptr (default): the server's own. A
    // daemon with one session per guest passes one agent-wide OpStats
    // (borrowed; must outlive the server) so the counts survive sessions.
    OpStats* stats = nullptr;
    // Called after INIT succeeds with what it negotiated, and after DESTROY
    // or Shutdown ends an initialized session with nullptr (under the
    // session lock: keep it short). A transport that keeps sessions across
    // a restart records it (see Resume). Default: none.
    std::function<void(const InitInfo*)> on_session_change;
  };

  explicit Server(FileSystem* fs) : Server(fs, Options()) {}
  Server(FileSystem* fs, Options options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Takes up a session a previous process negotiated (the peer does not
  // send INIT again): FileSystem::Init(info) runs and requests are served
  // as after that INIT. Call before the first request. kInvalidArgument for
  // a version this server does not speak; the file system's Init errors.
  absl::Status Resume(const InitInfo& info);

  size_t HandleRequest(IovReader& in, IovWriter& out) override;
  void Shutdown() override;

  // Per-opcode counts and latencies of every request handled (the
  // Options::stats object when one was given).
  const OpStats& stats() const { return *stats_; }
  // What INIT negotiated; major == 0 before INIT.
  InitInfo session() const;

 private:
  struct Request;
  struct Session {
    bool initialized = false;
    // Taken up by Resume: a new INIT starts a fresh session instead of
    // getting EPROTO (the peer is not the one that negotiated it -- a
    // front end whose kept session could not be resumed).
    bool resumed = false;
    InitInfo info;
  };

  // Each op handler returns 0 after writing the reply body after the header,
  // an errno for an error reply, or kNoReply.
  int Dispatch(Request& req, IovWriter& out);
  int DoInit(Request& req, IovWriter& out);
  int DoDestroy(Request& req);
  int DoForget(Request& req);
  int DoBatchForget(Request& req);
  int DoLookup(Request& req, IovWriter& out);
  int DoGetAttr(Request& req, IovWriter& out);
  int DoSetAttr(Request& req, IovWriter& out);
  int DoReadLink(Request& req, IovWriter& out);
  int DoSymlink(Request& req, IovWriter& out);
  int DoMknod(Request& req, IovWriter& out);
  int DoMkdir(Request& req, IovWriter& out);
  int DoUnlink(Request& req, bool dir);
  int DoRename(Request& req, bool rename2);
  int DoLink(Request& req, IovWriter& out);
  int DoOpen(Request& req, IovWriter& out, bool dir);
  int DoCreate(Request& req, IovWriter& out);
  int DoRead(Request& req, IovWriter& out);
  int DoWrite(Request& req, IovWriter& out);
  int DoFlush(Request& req);
  int DoRelease(Request& req, bool dir);
  int DoFsync(Request& req, bool dir);
  int DoReadDir(Request& req, IovWriter& out, bool plus);
  int DoStatFs(Request& req, IovWriter& out);
  int DoAccess(Request& req);
  int DoSetXattr(Request& req);
  int DoGetXattr(Request& req, IovWriter& out, bool list);
  int DoRemoveXattr(Request& req);
  int DoFallocate(Request& req);
  int DoLseek(Request& req, IovWriter& out);
  int DoCopyFileRange(Request& req, IovWriter& out);
  int DoGetLk(Request& req, IovWriter& out);
  int DoSetLk(Request& req, bool wait);

  FileSystem* const fs_;
  const Options options_;
  OpStats own_stats_;
  OpStats* const stats_;  // options_.stats or &own_stats_

  mutable absl::Mutex mu_;
  Session session_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coherefs::agent::fuse

#endif  // COHEREFS_AGENT_FUSE_SERVER_H_
