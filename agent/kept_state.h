// KeptState gives each part of the agent its own corner of the supervisor's
// state store (agent/supervisor/state_store.h): a vhost_user::SessionKeeper
// whose names all start with a fixed prefix, e.g. "guest/vm1/vhost/". The
// vhost-user layer and the FUSE session of a guest keep what must outlive
// a crash of this process under their own prefixes without knowing the
// store or each other.
//
// Ownership: borrows the store, which must outlive the keeper.
// Thread-safety: as the store (any thread).
#ifndef COHEREFS_AGENT_KEPT_STATE_H_
#define COHEREFS_AGENT_KEPT_STATE_H_

#include <optional>
#include <string>

#include "agent/supervisor/state_store.h"
#include "agent/vhost_user/session_keeper.h"

namespace coherefs::agent {

class PrefixKeeper final : public vhost_user::SessionKeeper {
 public:
  PrefixKeeper(supervisor::StateStore* store, std::string prefix)
      : store_(store), prefix_(std::move(prefix)) {}

  absl::Status Put(absl::string_view name, absl::string_view blob, int fd = -1) override {
    return store_->Put(Full(name), blob, fd);
  }
  absl::Status Remove(absl::string_view name) override { return store_->Remove(Full(name)); }
  std::optional<vhost_user::KeptEntry> Take(absl::string_view name) override {
    std::optional<supervisor::StateStore::Entry> e = store_->Take(Full(name));
    if (!e.has_value()) return std::nullopt;
    return vhost_user::KeptEntry{std::move(e->blob), std::move(e->fd)};
  }

 private:
  std::string Full(absl::string_view name) const { return prefix_ + std::string(name); }

  supervisor::StateStore* const store_;
  const std::string prefix_;
};

}  // namespace coherefs::agent

#endif  // COHEREFS_AGENT_KEPT_STATE_H_
