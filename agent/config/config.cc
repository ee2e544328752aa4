#include "agent/config/config.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/log.h"
#include "google/protobuf/util/json_util.h"

namespace coherefs::agent::config {
namespace {

constexpr char kDefaultVolume[] = "default";
constexpr int kMaxThreadPool = 64;
constexpr uint32_t kDefaultLeaseMaxMs = 5000;
constexpr uint32_t kDefaultLeaseMarginMs = 100;
constexpr uint32_t kMaxLeaseMs = 86400 * 1000;

bool WellFormedName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

std::string Dirname(const std::string& path) {
  auto pos = path.rfind('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string Basename(const std::string& path) {
  auto pos = path.rfind('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

// "/run/coherefs/vm1.sock" -> "vm1".
std::string GuestNameFromSocket(const std::string& path) {
  std::string name = Basename(path);
  if (absl::EndsWith(name, ".sock") && name.size() > 5) name.resize(name.size() - 5);
  return name;
}

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

// `path` is `dir` or below it.
bool PathWithin(const std::string& path, const std::string& dir) {
  return dir == "/" || path == dir || absl::StartsWith(path, dir + "/");
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<CoherenceMode> ParseCoherenceMode(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  if (n == "strict") return COHERENCE_STRICT;
  if (n == "bounded") return COHERENCE_BOUNDED;
  if (n == "off") return COHERENCE_OFF;
  return absl::InvalidArgumentError(
      absl::StrCat("coherence: \"", name, "\" is not one of strict, bounded, off"));
}

absl::string_view CoherenceModeName(CoherenceMode mode) {
  switch (mode) {
    case COHERENCE_STRICT:
      return "strict";
    case COHERENCE_BOUNDED:
      return "bounded";
    case COHERENCE_OFF:
      return "off";
    default:
      return "unspecified";
  }
}

absl::StatusOr<SandboxMode> ParseSandboxMode(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  if (n == "namespace") return SANDBOX_NAMESPACE;
  if (n == "none") return SANDBOX_NONE;
  return absl::InvalidArgumentError(
      absl::StrCat("sandbox: \"", name, "\" is not one of namespace, none"));
}

absl::string_view SandboxModeName(SandboxMode mode) {
  return mode == SANDBOX_NONE ? "none" : "namespace";
}

absl::StatusOr<SeccompAction> ParseSeccompAction(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  if (n == "kill") return SECCOMP_KILL;
  if (n == "log") return SECCOMP_LOG;
  if (n == "errno") return SECCOMP_ERRNO;
  return absl::InvalidArgumentError(
      absl::StrCat("seccomp-action: \"", name, "\" is not one of kill, log, errno"));
}

absl::string_view SeccompActionName(SeccompAction action) {
  switch (action) {
    case SECCOMP_LOG:
      return "log";
    case SECCOMP_ERRNO:
      return "errno";
    default:
      return "kill";
  }
}

absl::StatusOr<CacheMode> ParseCacheMode(absl::string_view name) {
  std::string n = absl::AsciiStrToLower(name);
  if (n == "none" || n == "never") return CACHE_NONE;
  if (n == "auto") return CACHE_AUTO;
  if (n == "always") return CACHE_ALWAYS;
  return absl::InvalidArgumentError(
      absl::StrCat("cache: \"", name, "\" is not one of none, auto, always"));
}

absl::string_view CacheModeName(CacheMode mode) {
  switch (mode) {
    case CACHE_NONE:
      return "none";
    case CACHE_ALWAYS:
      return "always";
    default:
      return "auto";
  }
}

absl::StatusOr<AgentConfig> ParseConfigJson(absl::string_view json) {
  AgentConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &config, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", std::string(status.message().data(), status.message().size())));
  }
  return config;
}

absl::StatusOr<AgentConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return LastErrnoStatus(absl::StrCat("config file ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  auto config = ParseConfigJson(buf.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::StatusOr<AgentConfig> ApplyFlags(AgentConfig config, const FlagOverrides& flags) {
  if (!flags.shared_dir.empty()) {
    Volume* volume = nullptr;
    for (Volume& v : *config.mutable_volumes()) {
      if (v.name() == kDefaultVolume) volume = &v;
    }
    if (volume == nullptr) {
      volume = config.add_volumes();
      volume->set_name(kDefaultVolume);
    }
    volume->set_shared_dir(flags.shared_dir);
    if (!flags.host_mount.empty()) volume->set_host_mount(flags.host_mount);
  }
  for (const std::string& socket : flags.socket_paths) {
    Guest* guest = config.add_guests();
    guest->set_socket_path(socket);
    if (!flags.shared_dir.empty()) guest->set_volume(kDefaultVolume);
  }
  if (!flags.coherence.empty()) {
    auto mode = ParseCoherenceMode(flags.coherence);
    if (!mode.ok()) return mode.status();
    for (Volume& v : *config.mutable_volumes()) v.set_coherence(*mode);
  }
  for (Volume& v : *config.mutable_volumes()) {
    if (flags.lease_max_ms >= 0) v.set_lease_max_ms(flags.lease_max_ms);
    if (flags.lease_margin_ms >= 0) v.set_lease_margin_ms(flags.lease_margin_ms);
    if (flags.no_host_watch) v.set_host_watch(false);
  }
  if (!flags.table_export_dir.empty()) config.set_table_export_dir(flags.table_export_dir);
  if (!flags.cache.empty()) {
    auto mode = ParseCacheMode(flags.cache);
    if (!mode.ok()) return mode.status();
    for (Volume& v : *config.mutable_volumes()) v.set_cache(*mode);
  }
  for (Volume& v : *config.mutable_volumes()) {
    if (flags.writeback) v.set_writeback(true);
    if (flags.readonly) v.set_readonly(true);
    if (flags.no_xattr) v.set_xattr(false);
  }
  if (flags.thread_pool_size >= 0) config.set_thread_pool_size(flags.thread_pool_size);
  if (flags.metrics_listen_set) config.set_metrics_listen(flags.metrics_listen);
  if (!flags.admin_listen.empty()) config.set_admin_listen(flags.admin_listen);
  if (!flags.log_level.empty()) config.set_log_level(flags.log_level);
  if (!flags.coordinator.empty()) config.set_coordinator(flags.coordinator);
  if (!flags.agent_id.empty()) config.set_agent_id(flags.agent_id);
  if (!flags.sandbox.empty()) {
    auto mode = ParseSandboxMode(flags.sandbox);
    if (!mode.ok()) return mode.status();
    config.set_sandbox(*mode);
  }
  if (!flags.seccomp_action.empty()) {
    auto action = ParseSeccompAction(flags.seccomp_action);
    if (!action.ok()) return action.status();
    config.set_seccomp_action(*action);
  }
  const TransportSecurity& t = flags.transport;
  if (t.insecure || !t.ca_file.empty() || !t.cert_file.empty() || !t.key_file.empty()) {
    config.set_tls_ca(t.ca_file);
    config.set_tls_cert(t.cert_file);
    config.set_tls_key(t.key_file);
    config.set_insecure(t.insecure);
  }
  if (!config.coordinator().empty() && config.agent_id().empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    config.set_agent_id(host[0] != '\0' ? host : "agent");
  }
  // Fill implied fields so the rest of the agent sees a complete config.
  for (Guest& g : *config.mutable_guests()) {
    if (g.name().empty()) g.set_name(GuestNameFromSocket(g.socket_path()));
    if (g.volume().empty() && config.volumes_size() == 1) {
      g.set_volume(config.volumes(0).name());
    }
  }
  for (Volume& v : *config.mutable_volumes()) {
    if (v.coherence() == COHERENCE_UNSPECIFIED) {
      v.set_coherence(config.coordinator().empty() ? COHERENCE_OFF : COHERENCE_STRICT);
    }
    // Under coherence, leases decide how long guests cache: let them cache
    // as long as a lease allows (cache=always), unless told otherwise.
    if (v.cache() == CACHE_UNSPECIFIED) {
      v.set_cache(v.coherence() == COHERENCE_OFF ? CACHE_AUTO : CACHE_ALWAYS);
    }
    if (!v.has_xattr()) v.set_xattr(true);
    if (v.coherence() != COHERENCE_OFF) {
      if (v.lease_max_ms() == 0) v.set_lease_max_ms(kDefaultLeaseMaxMs);
      if (!v.has_lease_margin_ms()) v.set_lease_margin_ms(kDefaultLeaseMarginMs);
      if (!v.has_host_watch()) v.set_host_watch(true);
    }
  }
  return config;
}

absl::Status Validate(const AgentConfig& config) {
  if (config.volumes().empty()) {
    return Invalid("volumes", "none configured (give --shared-dir or a config file)");
  }
  bool any_host_mount = false;
  for (const Volume& v : config.volumes()) any_host_mount |= !v.host_mount().empty();
  if (config.guests().empty() && !any_host_mount) {
    return Invalid("guests",
                   "none configured (give --socket-path, --host-mount or a config file)");
  }
  std::set<std::string> volume_names;
  for (int i = 0; i < config.volumes_size(); ++i) {
    const Volume& v = config.volumes(i);
    std::string field = absl::StrCat("volumes[", i, "]");
    if (!WellFormedName(v.name())) {
      return Invalid(absl::StrCat(field, ".name"),
                     absl::StrCat("\"", v.name(), "\" must match [A-Za-z0-9_.-]{1,64}"));
    }
    if (!volume_names.insert(v.name()).second) {
      return Invalid(absl::StrCat(field, ".name"), absl::StrCat("duplicate \"", v.name(), "\""));
    }
    if (!absl::StartsWith(v.shared_dir(), "/")) {
      return Invalid(absl::StrCat(field, ".shared_dir"),
                     absl::StrCat("\"", v.shared_dir(), "\" must be an absolute path"));
    }
    if (!IsDirectory(v.shared_dir())) {
      return Invalid(absl::StrCat(field, ".shared_dir"),
                     absl::StrCat("\"", v.shared_dir(), "\" is not an existing directory"));
    }
    if (!v.host_mount().empty() &&
        (!absl::StartsWith(v.host_mount(), "/") || !IsDirectory(v.host_mount()))) {
      return Invalid(absl::StrCat(field, ".host_mount"),
                     absl::StrCat("\"", v.host_mount(), "\" is not an existing absolute directory"));
    }
  }
  // A host mount inside a served tree (or a tree inside a host mount) makes
  // the agent serve its own FUSE mount: a lookup through it calls back into
  // the agent (a deadlock once its threads are busy). Compared after
  // resolving symlinks.
  for (int i = 0; i < config.volumes_size(); ++i) {
    if (config.volumes(i).host_mount().empty()) continue;
    const std::string mount = RealPath(config.volumes(i).host_mount());
    for (const Volume& w : config.volumes()) {
      const std::string shared = RealPath(w.shared_dir());
      if (PathWithin(mount, shared) || PathWithin(shared, mount)) {
        return Invalid(absl::StrCat("volumes[", i, "].host_mount"),
                       absl::StrCat("\"", config.volumes(i).host_mount(),
                                    "\" overlaps shared_dir \"", w.shared_dir(),
                                    "\" (the agent would serve its own mount)"));
      }
    }
  }
  std::set<std::string> sockets, guest_names;
  for (int i = 0; i < config.guests_size(); ++i) {
    const Guest& g = config.guests(i);
    std::string field = absl::StrCat("guests[", i, "]");
    if (!absl::StartsWith(g.socket_path(), "/")) {
      return Invalid(absl::StrCat(field, ".socket_path"),
                     absl::StrCat("\"", g.socket_path(), "\" must be an absolute path"));
    }
    // sun_path holds 107 bytes and a NUL.
    if (g.socket_path().size() > 107) {
      return Invalid(absl::StrCat(field, ".socket_path"), "longer than 107 bytes");
    }
    if (!IsDirectory(Dirname(g.socket_path()))) {
      return Invalid(absl::StrCat(field, ".socket_path"),
                     absl::StrCat("directory of \"", g.socket_path(), "\" does not exist"));
    }
    if (!sockets.insert(g.socket_path()).second) {
      return Invalid(absl::StrCat(field, ".socket_path"),
                     absl::StrCat("\"", g.socket_path(), "\" used twice"));
    }
    if (!g.name().empty() && !guest_names.insert(g.name()).second) {
      return Invalid(absl::StrCat(field, ".name"), absl::StrCat("duplicate \"", g.name(), "\""));
    }
    if (g.volume().empty()) {
      return Invalid(absl::StrCat(field, ".volume"),
                     "missing (required when several volumes are configured)");
    }
    if (volume_names.count(g.volume()) == 0) {
      return Invalid(absl::StrCat(field, ".volume"),
                     absl::StrCat("no volume named \"", g.volume(), "\""));
    }
  }
  if (config.thread_pool_size() > kMaxThreadPool) {
    return Invalid("thread_pool_size", absl::StrCat(config.thread_pool_size(), " is over ",
                                                    kMaxThreadPool));
  }
  for (int i = 0; i < config.volumes_size(); ++i) {
    const Volume& v = config.volumes(i);
    const std::string field = absl::StrCat("volumes[", i, "]");
    if (v.coherence() != COHERENCE_OFF && v.coherence() != COHERENCE_UNSPECIFIED &&
        config.coordinator().empty()) {
      return Invalid(absl::StrCat(field, ".coherence"),
                     absl::StrCat(CoherenceModeName(v.coherence()),
                                  " needs a coordinator (--coordinator=HOST:PORT)"));
    }
    if (v.lease_max_ms() > kMaxLeaseMs) {
      return Invalid(absl::StrCat(field, ".lease_max_ms"),
                     absl::StrCat(v.lease_max_ms(), " is over one day"));
    }
    if (v.lease_margin_ms() > kMaxLeaseMs) {
      return Invalid(absl::StrCat(field, ".lease_margin_ms"),
                     absl::StrCat(v.lease_margin_ms(), " is over one day"));
    }
  }
  if (!config.table_export_dir().empty() &&
      (!absl::StartsWith(config.table_export_dir(), "/") ||
       !IsDirectory(config.table_export_dir()))) {
    return Invalid("table_export_dir",
                   absl::StrCat("\"", config.table_export_dir(),
                                "\" is not an existing absolute directory"));
  }
  if (!config.coordinator().empty() &&
      (config.coordinator().find(':') == std::string::npos || config.agent_id().empty() ||
       config.agent_id().size() > 128)) {
    return Invalid("coordinator",
                   absl::StrCat("\"", config.coordinator(),
                                "\" must be host:port, with an agent id of 1..128 bytes"));
  }
  if (!config.coordinator().empty() || !config.admin_listen().empty()) {
    if (absl::Status s = CheckTransportSecurity(TransportOf(config)); !s.ok()) return s;
  }
  LogLevel level;
  if (!config.log_level().empty() && !ParseLogLevel(config.log_level(), &level)) {
    return Invalid("log_level", absl::StrCat("\"", config.log_level(),
                                             "\" is not one of debug, info, warn, error"));
  }
  return absl::OkStatus();
}

TransportSecurity TransportOf(const AgentConfig& config) {
  TransportSecurity t;
  t.ca_file = config.tls_ca();
  t.cert_file = config.tls_cert();
  t.key_file = config.tls_key();
  t.insecure = config.insecure();
  return t;
}

}  // namespace coherefs::agent::config
