// FuseSession is one guest's (or one host mount's) FUSE session: a
// passthrough file system over the volume's shared directory and the FUSE
// server in front of it, owned together so a transport can hold the pair
// as one RequestHandler. Each guest connection gets its own session, so a
// guest's lookup counts, open files and INIT state are its own and a guest
// that disconnects or misbehaves drops only what it held.
//
// With a VolumeCoherence, the session's file system is the passthrough
// wrapped in a coherence::CoherentFs (leases, bumps) for that volume.
//
// When the file system cannot be created (the shared directory vanished),
// NewFuseSession returns a handler that answers every request with EIO, so
// the guest sees a clean error and the daemon keeps serving the others.
//
// Thread-safety: as fuse::Server (HandleRequest from many threads).
#ifndef COHEREFS_AGENT_FUSE_SESSION_H_
#define COHEREFS_AGENT_FUSE_SESSION_H_

#include <memory>
#include <optional>

#include "agent/coherence/volume_coherence.h"
#include "agent/fuse/op_stats.h"
#include "agent/fuse/request_handler.h"
#include "agent/fuse/server.h"
#include "agent/passthrough/passthrough_fs.h"

namespace coherefs::agent {

// `server_options.stats` (when set) collects this session's per-opcode
// counts into an agent-wide OpStats that outlives the session. `coherence`
// (may be null: no coherence) is borrowed and must outlive the session.
// `resume`: the session continues one a previous process negotiated
// (fuse::Server::Resume); if that fails the session answers EIO.
std::unique_ptr<fuse::RequestHandler> NewFuseSession(
    const passthrough::Options& fs_options, const fuse::Server::Options& server_options,
    coherence::VolumeCoherence* coherence = nullptr,
    const std::optional<fuse::InitInfo>& resume = std::nullopt);

}  // namespace coherefs::agent

#endif  // COHEREFS_AGENT_FUSE_SESSION_H_
