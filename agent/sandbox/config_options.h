// What the sandbox must keep visible for a given agent configuration: every
// volume's shared directory and the directories of the vhost-user sockets
// and of the table export (read-write), the TLS files (read-only: a fresh
// coordinator channel may load them again), and the host mounts for the
// unmount helper. Pure function.
#ifndef COHEREFS_AGENT_SANDBOX_CONFIG_OPTIONS_H_
#define COHEREFS_AGENT_SANDBOX_CONFIG_OPTIONS_H_

#include "agent/config/agent_config.pb.h"
#include "agent/sandbox/sandbox.h"

namespace coherefs::agent::sandbox {

Options OptionsFor(const config::AgentConfig& config);

}  // namespace coherefs::agent::sandbox

#endif  // COHEREFS_AGENT_SANDBOX_CONFIG_OPTIONS_H_
