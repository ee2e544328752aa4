// Loading and checking the agent's configuration: a JSON file (the schema
// and an example are in agent_config.proto) merged with virtiofsd-style
// flags, so `coherefs-agent --socket-path=S --shared-dir=D` alone is a
// complete configuration (one volume "default", one guest).
//
// Every problem is reported as InvalidArgument naming the field (e.g.
// "guests[1].volume: no volume named \"x\""), and nothing is started until
// the whole configuration is valid. Pure functions; thread-safe.
#ifndef COHEREFS_AGENT_CONFIG_CONFIG_H_
#define COHEREFS_AGENT_CONFIG_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/config/agent_config.pb.h"
#include "common/tls.h"

namespace coherefs::agent::config {

// What the command line said; empty/zero fields leave the file's value.
struct FlagOverrides {
  std::vector<std::string> socket_paths;  // one guest per path
  std::string shared_dir;                 // volume "default"
  std::string host_mount;                 // volume "default" on /dev/fuse
  std::string cache;                      // none | auto | always
  bool writeback = false;
  bool readonly = false;
  bool no_xattr = false;
  int thread_pool_size = -1;  // -1: not given
  std::string metrics_listen;
  bool metrics_listen_set = false;
  std::string log_level;
  std::string coordinator;
  std::string agent_id;
  std::string coherence;     // strict | bounded | off
  int lease_max_ms = -1;     // -1: not given
  int lease_margin_ms = -1;  // -1: not given
  bool no_host_watch = false;
  std::string table_export_dir;
  std::string admin_listen;
  // --tls-ca/--tls-cert/--tls-key, --insecure: given on the command line,
  // they replace the file's transport settings as a whole.
  TransportSecurity transport;
  std::string sandbox;         // namespace | none
  std::string seccomp_action;  // kill | log | errno
};

// Parses a JSON configuration. InvalidArgument with the parser's message on
// malformed JSON or unknown fields.
absl::StatusOr<AgentConfig> ParseConfigJson(absl::string_view json);

// Reads and parses `path`. NotFound / PermissionDenied when it can't be read.
absl::StatusOr<AgentConfig> LoadConfigFile(const std::string& path);

// Applies flags on top of `base`: --shared-dir defines (or redefines) volume
// "default"; each --socket-path adds a guest of that volume (or of the only
// volume when there is one); cache/writeback/readonly/no_xattr apply to
// every volume.
absl::StatusOr<AgentConfig> ApplyFlags(AgentConfig base, const FlagOverrides& flags);

// Checks the whole configuration: at least one volume and one guest; names
// unique and well formed; shared dirs absolute, existing directories; socket
// paths absolute, unique, their directory existing; every guest's volume
// known (or implied); thread pool <= 64; log level known; strict or bounded
// coherence only with a coordinator; leases at most one day; with a
// coordinator or an admin endpoint, mutual TLS files or insecure (the
// message of CheckTransportSecurity, common/tls.h).
absl::Status Validate(const AgentConfig& config);

// The transport settings of `config` (tls_* / insecure fields).
TransportSecurity TransportOf(const AgentConfig& config);

// Coherence mode by name ("strict", "bounded", "off").
absl::StatusOr<CoherenceMode> ParseCoherenceMode(absl::string_view name);
absl::string_view CoherenceModeName(CoherenceMode mode);

// Sandbox mode by name ("namespace", "none") and seccomp action by name
// ("kill", "log", "errno"); the Name functions resolve UNSPECIFIED to the
// default (namespace, kill).
absl::StatusOr<SandboxMode> ParseSandboxMode(absl::string_view name);
absl::string_view SandboxModeName(SandboxMode mode);
absl::StatusOr<SeccompAction> ParseSeccompAction(absl::string_view name);
absl::string_view SeccompActionName(SeccompAction action);

// Cache mode by name ("none", "auto", "always").
absl::StatusOr<CacheMode> ParseCacheMode(absl::string_view name);
absl::string_view CacheModeName(CacheMode mode);

}  // namespace coherefs::agent::config

#endif  // COHEREFS_AGENT_CONFIG_CONFIG_H_
