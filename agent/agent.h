// Agent is the coherefs-agent daemon's body: for a validated AgentConfig it
// starts one vhost-user-fs socket per guest (agent/virtio_fs) and the
// optional /dev/fuse host mount per volume, each connection served by its
// own FUSE session over the volume's shared directory, the Prometheus
// endpoint, and the optional admin gRPC service (--admin-listen,
// agent/admin). Stop() ends every session, joins every thread, removes the
// sockets and unmounts.
//
// Errors from Start: whatever a socket, mount or metrics listener reports
// (e.g. AlreadyExists when another process serves a socket path,
// Unavailable when the metrics or admin address cannot be bound); on error nothing
// stays running.
//
// Restarts: with a supervisor's state store (agent/supervisor), each guest's
// vhost-user session, FUSE session (INIT state, node and handle journal) and
// each volume's version table are kept in the store as they change, and an
// agent process started after a crash takes them up (see README "Agent
// restarts"): guests keep running without noticing more than a pause. It
// also takes over its predecessor's coordinator registration and counts
// every slot as leased for one maximum lease, since the leases the dead
// process granted are unknown.
//
// Thread-safety: Start and Stop from the main thread; the servers run on
// their own threads.
#ifndef COHEREFS_AGENT_AGENT_H_
#define COHEREFS_AGENT_AGENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/admin/admin_service.h"
#include "agent/coherence/coordinator_link.h"
#include "agent/coherence/host_watcher.h"
#include "agent/coherence/link_backend.h"
#include "agent/coherence/version_table.h"
#include "agent/coherence/volume_coherence.h"
#include "agent/config/agent_config.pb.h"
#include "agent/fuse/dev_fuse_transport.h"
#include "agent/fuse/op_stats.h"
#include "agent/supervisor/state_store.h"
#include "agent/vhost_user/session_keeper.h"
#include "agent/virtio_fs/device.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace coherefs::agent {

class Agent {
 public:
  // `store` (may be null: nothing survives this process) must outlive the
  // Agent.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(const config::AgentConfig& config,
                                                      supervisor::StateStore* store = nullptr);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void Stop();

  // The address the metrics endpoint is bound to ("" when disabled).
  std::string metrics_address() const;
  // The address the admin service is bound to ("" when disabled).
  std::string admin_address() const { return admin_ ? admin_->address() : ""; }

  // With a coordinator configured: the link and each volume's version
  // table (nullptr otherwise, or for an unknown volume).
  coherence::CoordinatorLink* coordinator_link() const { return link_.get(); }
  coherence::VersionTable* version_table(const std::string& volume) const;
  // A volume's coherence state (nullptr when its coherence is off).
  coherence::VolumeCoherence* coherence(const std::string& volume) const;

 private:
  struct Guest {
    std::string name;
    std::string volume;
    // Declared before the server, which borrows them.
    std::unique_ptr<vhost_user::SessionKeeper> vhost_keeper;
    std::shared_ptr<vhost_user::SessionKeeper> fuse_keeper;
    std::unique_ptr<virtio_fs::Server> server;
  };
  struct HostMount {
    std::string volume;
    std::string dir;
    std::unique_ptr<fuse::RequestHandler> session;
    std::unique_ptr<fuse::DevFuseTransport> transport;
  };

  Agent(config::AgentConfig config, supervisor::StateStore* store);
  // The volume's version table: taken up from the store when a previous
  // process kept one, else new (and kept).
  absl::StatusOr<std::unique_ptr<coherence::VersionTable>> MakeTable(const std::string& volume,
                                                                     uint32_t capacity);
  // Whether this process follows one that died (its state is in the store).
  bool restarted() const;
  absl::Status StartAll();
  absl::Status StartMetrics();
  absl::Status StartAdmin();
  absl::Status StartCoordinatorLink();
  // Creates each coherent volume's VolumeCoherence (before the link starts:
  // the link reports their leases).
  absl::Status StartCoherence(coherence::CoordinatorLinkOptions* link_options);
  absl::Status ExportTables() const;
  std::vector<coherence::SlotRemaining> ReportLeases(const std::string& volume,
                                                     const std::vector<uint32_t>* slots);
  std::vector<std::string> VolumeNames() const;

  const config::AgentConfig config_;
  supervisor::StateStore* const store_;
  // Every session's FUSE counters, kept across sessions so counters never
  // go backwards when a guest reconnects.
  fuse::OpStats op_stats_;
  // Declared before the link, which borrows them: destroyed after it.
  std::vector<std::pair<std::string, std::unique_ptr<coherence::VersionTable>>> tables_;
  std::unique_ptr<coherence::CoordinatorLink> link_;
  struct CoherentVolume {
    std::string name;
    std::unique_ptr<coherence::LinkBackend> backend;
    std::unique_ptr<coherence::VolumeCoherence> state;
    // Declared last: destroyed first (its callbacks use `state`).
    std::unique_ptr<coherence::HostWatcher> watcher;
  };
  // Borrow the link and the tables; sessions (below) borrow them.
  std::vector<CoherentVolume> coherent_;
  std::vector<Guest> guests_;
  std::vector<HostMount> host_mounts_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<admin::AdminServer> admin_;
  bool stopped_ = false;
};

}  // namespace coherefs::agent

#endif  // COHEREFS_AGENT_AGENT_H_
