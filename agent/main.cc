// coherefs-agent: serves virtio-fs (vhost-user-fs) to the guests of this
// host, and optionally the same volumes on host mounts through /dev/fuse.
//
//   coherefs-agent --socket-path=/run/coherefs/vm1.sock --shared-dir=/srv/shared
//   coherefs-agent --config=/etc/coherefs/agent.json
//
// Exit codes: 0 after SIGTERM/SIGINT, 2 for a bad command line or
// configuration, 1 when serving could not start.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/config/config.h"
#include "agent/sandbox/config_options.h"
#include "agent/sandbox/sandbox.h"
#include "agent/supervisor/state_store.h"
#include "agent/supervisor/supervisor.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/tls_flags.h"

ABSL_FLAG(std::string, config, "", "JSON configuration file (see agent/config/agent_config.proto).");
ABSL_FLAG(std::vector<std::string>, socket_path, {},
          "vhost-user socket(s) to create, one guest each (comma-separated).");
ABSL_FLAG(std::string, shared_dir, "", "Directory to share (volume \"default\").");
ABSL_FLAG(std::string, host_mount, "",
          "Also mount the shared directory here through /dev/fuse (needs root).");
ABSL_FLAG(std::string, cache, "", "none | auto | always (default auto).");
ABSL_FLAG(bool, writeback, false, "Let guests cache writes (FUSE_WRITEBACK_CACHE).");
ABSL_FLAG(bool, readonly, false, "Refuse every modification with EROFS.");
ABSL_FLAG(bool, xattr, true, "Pass extended attributes through.");
ABSL_FLAG(int, thread_pool_size, -1,
          "Worker threads per request queue; 0 serves on the queue thread (default 0).");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port for the Prometheus /metrics endpoint; empty disables it.");
ABSL_FLAG(std::string, log_level, "", "debug | info | warn | error (default info).");
ABSL_FLAG(std::string, coordinator, "",
          "host:port of coherefs-coordinator to follow; empty runs alone.");
ABSL_FLAG(std::string, agent_id, "", "This agent's id at the coordinator (default: host name).");
ABSL_FLAG(std::string, coherence, "",
          "strict | bounded | off (default strict with --coordinator, off without).");
ABSL_FLAG(int, lease_max_ms, -1, "Longest entry/attr lease granted to guests, ms (default 5000).");
ABSL_FLAG(int, lease_margin_ms, -1,
          "Strict mode: extra wait past known leases for guest clocks, ms (default 100).");
ABSL_FLAG(bool, host_watch, true,
          "Announce changes made directly on the shared directory (fanotify).");
ABSL_FLAG(std::string, admin_listen, "",
          "host:port for the admin gRPC service (coherectl); empty disables it.");
ABSL_FLAG(std::string, sandbox, "",
          "namespace | none: confine the agent once it serves (default namespace; README "
          "\"Sandbox\").");
ABSL_FLAG(std::string, seccomp_action, "",
          "kill | log | errno: what seccomp does with a call off the allowlist (default kill).");
ABSL_FLAG(std::string, table_export_dir, "",
          "Write <volume>.table.json (QEMU arguments to map each version table) here.");
ABSL_FLAG(bool, supervise, true,
          "Run the agent under a supervisor that restarts it, keeping its sessions, if it "
          "dies (README \"Agent restarts\").");

namespace {

// A bad command line (2) is told plainly, like any CLI's usage error; a
// failure to start serving (1) is a daemon event and goes to the log.
int Fail(int code, const std::string& what) {
  if (code == 2) {
    std::fprintf(stderr, "coherefs-agent: %s\n", what.c_str());
  } else {
    LOG_ERROR("cannot start").Kv("error", what);
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves virtio-fs to QEMU guests over vhost-user sockets.\n"
      "  coherefs-agent --socket-path=/run/vm1.sock --shared-dir=/srv/shared [--cache=always]\n"
      "  coherefs-agent --config=agent.json");
  std::vector<std::string> rest = coherefs::ParseCommandLineOrExit2(argc, argv);
  if (rest.size() > 1) return Fail(2, "unexpected argument '" + rest[1] + "'");
  coherefs::SetLogComponent("agent");

  namespace config = coherefs::agent::config;
  config::AgentConfig base;
  if (!absl::GetFlag(FLAGS_config).empty()) {
    auto loaded = config::LoadConfigFile(absl::GetFlag(FLAGS_config));
    if (!loaded.ok()) return Fail(2, std::string(loaded.status().message()));
    base = std::move(*loaded);
  }
  config::FlagOverrides flags;
  flags.socket_paths = absl::GetFlag(FLAGS_socket_path);
  flags.shared_dir = absl::GetFlag(FLAGS_shared_dir);
  flags.host_mount = absl::GetFlag(FLAGS_host_mount);
  flags.cache = absl::GetFlag(FLAGS_cache);
  flags.writeback = absl::GetFlag(FLAGS_writeback);
  flags.readonly = absl::GetFlag(FLAGS_readonly);
  flags.no_xattr = !absl::GetFlag(FLAGS_xattr);
  flags.thread_pool_size = absl::GetFlag(FLAGS_thread_pool_size);
  flags.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  flags.metrics_listen_set = !flags.metrics_listen.empty();
  flags.log_level = absl::GetFlag(FLAGS_log_level);
  flags.coordinator = absl::GetFlag(FLAGS_coordinator);
  flags.agent_id = absl::GetFlag(FLAGS_agent_id);
  flags.coherence = absl::GetFlag(FLAGS_coherence);
  flags.lease_max_ms = absl::GetFlag(FLAGS_lease_max_ms);
  flags.lease_margin_ms = absl::GetFlag(FLAGS_lease_margin_ms);
  flags.no_host_watch = !absl::GetFlag(FLAGS_host_watch);
  flags.table_export_dir = absl::GetFlag(FLAGS_table_export_dir);
  flags.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  flags.transport = coherefs::TransportSecurityFromFlags();
  flags.sandbox = absl::GetFlag(FLAGS_sandbox);
  flags.seccomp_action = absl::GetFlag(FLAGS_seccomp_action);
  auto merged = config::ApplyFlags(std::move(base), flags);
  if (!merged.ok()) return Fail(2, std::string(merged.status().message()));
  if (absl::Status s = config::Validate(*merged); !s.ok()) {
    return Fail(2, std::string(s.message()));
  }
  coherefs::LogLevel level = coherefs::LogLevel::kInfo;
  if (!merged->log_level().empty()) coherefs::ParseLogLevel(merged->log_level(), &level);
  coherefs::SetLogLevel(level);
  // Bad or missing certificate files are a configuration error (2), found
  // before anything starts.
  if (!merged->coordinator().empty() || !merged->admin_listen().empty()) {
    const coherefs::TransportSecurity transport = config::TransportOf(*merged);
    if (transport.insecure) {
      LOG_WARN(coherefs::InsecureWarning("the coordinator link and the admin service"));
    } else if (auto material = coherefs::LoadTlsMaterial(transport); !material.ok()) {
      return Fail(2, std::string(material.status().message()));
    } else if (!merged->coordinator().empty() &&
               !coherefs::HasIdentity(material->identities, merged->agent_id())) {
      // The coordinator would refuse every registration: say so now.
      return Fail(2, "agent id \"" + merged->agent_id() + "\" is neither the CN nor a DNS name of " +
                         "--tls-cert " + transport.cert_file);
    }
  }

  // Supervised (the default): this process becomes the supervisor, before
  // any thread exists, and the agent runs in its worker: this binary again,
  // started with COHEREFS_STATE_FD set (agent/supervisor/supervisor.h).
  if (absl::GetFlag(FLAGS_supervise) &&
      std::getenv(coherefs::agent::supervisor::kStateFdEnv) == nullptr) {
    return coherefs::agent::supervisor::RunSupervisor(argv);
  }

  // Block the stop signals before any thread starts, so every thread
  // inherits the mask and only sigwait below sees them. SIGPIPE: a guest
  // that vanishes mid-write must not kill the daemon.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // A supervised worker: what the previous worker kept (nothing for the
  // first), and where this one keeps its sessions.
  auto store = coherefs::agent::supervisor::StateStore::FromEnvironment();
  if (!store.ok()) return Fail(1, store.status().ToString());
  if (*store != nullptr && (*store)->restarts() > 0) {
    LOG_WARN("agent restarted by its supervisor; taking up the sessions it kept")
        .Kv("restarts", (*store)->restarts());
  }
  auto agent = coherefs::agent::Agent::Start(*merged, store->get());
  if (!agent.ok()) return Fail(1, agent.status().ToString());
  // Everything privileged is done: confine the rest of the run.
  auto sandbox = coherefs::agent::sandbox::Sandbox::Enter(
      coherefs::agent::sandbox::OptionsFor(*merged));
  if (!sandbox.ok()) {
    // Half-confined: do not serve, and do not run Stop (it may need what
    // is gone); exiting closes the sockets and ends the host mounts.
    LOG_ERROR("cannot enter the sandbox (--sandbox=none to run without)")
        .Kv("error", sandbox.status());
    std::_Exit(1);
  }
  LOG_INFO("coherefs-agent ready")
      .Kv("guests", merged->guests_size())
      .Kv("volumes", merged->volumes_size())
      .Kv("metrics", (*agent)->metrics_address())
      .Kv("admin", (*agent)->admin_address());

  int signo = 0;
  sigwait(&stop_signals, &signo);
  LOG_INFO("stopping").Kv("signal", signo == SIGTERM ? "SIGTERM" : "SIGINT");
  if (absl::Status s = (*sandbox)->ReleaseHostMounts(); !s.ok()) {
    LOG_WARN("host mounts not released").Kv("error", s);
  }
  (*agent)->Stop();
  LOG_INFO("stopped");
  return 0;
}
