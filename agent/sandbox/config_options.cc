#include "agent/sandbox/config_options.h"

namespace coherefs::agent::sandbox {
namespace {

std::string Dirname(const std::string& path) {
  const auto pos = path.rfind('/');
  if (pos == std::string::npos) return ".";
  return pos == 0 ? "/" : path.substr(0, pos);
}

}  // namespace

Options OptionsFor(const config::AgentConfig& config) {
  Options options;
  options.mode = config.sandbox() == config::SANDBOX_NONE ? Mode::kNone : Mode::kNamespace;
  switch (config.seccomp_action()) {
    case config::SECCOMP_LOG:
      options.seccomp = SeccompAction::kLog;
      break;
    case config::SECCOMP_ERRNO:
      options.seccomp = SeccompAction::kErrno;
      break;
    default:
      options.seccomp = SeccompAction::kKill;
  }
  for (const config::Volume& v : config.volumes()) {
    options.rw_dirs.push_back(v.shared_dir());
    if (!v.host_mount().empty()) options.host_mounts.push_back(v.host_mount());
  }
  for (const config::Guest& g : config.guests()) options.rw_dirs.push_back(Dirname(g.socket_path()));
  if (!config.table_export_dir().empty()) options.rw_dirs.push_back(config.table_export_dir());
  for (const std::string& f : {config.tls_ca(), config.tls_cert(), config.tls_key()}) {
    if (!f.empty()) options.ro_paths.push_back(f);
  }
  return options;
}

}  // namespace coherefs::agent::sandbox
