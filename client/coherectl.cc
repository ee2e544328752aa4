// coherectl: the operator's command line for a coherefs cluster, over the
// coordinator service (client/coordinator_client.h) and the agents' admin
// service (client/agent_admin_client.h). See client/README.md.
//
//   coherectl [--coordinator=HOST:PORT] [--agent=HOST:PORT]... [--json] COMMAND ...
//
// Exit codes: 0 ok; 1 the operation failed (unreachable daemon, unknown
// volume, no such path, ...); 2 bad usage. Errors are one line on stderr
// ("coherectl: ..."); with --json also {"error":{"code","message"}} on
// stdout, so a script always gets JSON.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/agent_admin_client.h"
#include "client/coherectl_output.h"
#include "client/coordinator_client.h"
#include "client/table_diff.h"
#include "common/errno_status.h"
#include "common/file_key.h"

namespace coherefs::client {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr char kDefaultCoordinator[] = "127.0.0.1:7420";
constexpr uint32_t kMaxBumpBatch = 4096;

constexpr char kGlobalHelp[] =
    "Global options (any position):\n"
    "  --coordinator=HOST:PORT  coordinator address (default $COHERECTL_COORDINATOR,\n"
    "                           else 127.0.0.1:7420)\n"
    "  --agent=HOST:PORT        an agent's admin address (--admin-listen); repeatable\n"
    "  --json                   machine-readable output\n"
    "  --timeout=SECONDS        deadline of each call (default 5)\n"
    "  --help                   help for the command\n"
    "Exit codes: 0 ok, 1 operation failed, 2 usage.\n";

struct CommandSpec {
  const char* name;
  const char* usage;
  const char* help;
  std::set<std::string> flags;  // command-specific flags allowed
};

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>{
      {"status", "coherectl status [--agent=HOST:PORT]...",
       "Cluster status: the coordinator's epoch and volumes, and for every --agent\n"
       "its link (id, epoch, fenced), volumes (coherence mode, lease max, table\n"
       "occupancy) and guests (socket, connections, requests).\n",
       {}},
      {"volume describe", "coherectl volume describe NAME",
       "One volume at the coordinator: capacity, slots used, committed and first\n"
       "retained sequence numbers.\n",
       {}},
      {"resolve", "coherectl resolve PATH --volume=NAME [--agent=HOST:PORT]...",
       "The slot of PATH (a file in the volume's shared directory on this host;\n"
       "the last component is not followed) and its version at the coordinator;\n"
       "with --agent also in that agent's table, flagging any disagreement.\n"
       "Resolving a file the coordinator has not seen allocates its slot.\n",
       {"volume"}},
      {"watch", "coherectl watch --volume=NAME [--count=N] [--seconds=S]",
       "Prints the volume's invalidations live (anonymous Subscribe from now),\n"
       "until N were printed or S seconds passed (default: until interrupted).\n",
       {"volume", "count", "seconds"}},
      {"table dump", "coherectl table dump --volume=NAME [--agent=HOST:PORT]",
       "Every allocated slot's version: the coordinator's (Snapshot), or with\n"
       "--agent that agent's table.\n",
       {"volume"}},
      {"table diff", "coherectl table diff --volume=NAME --agent=HOST:PORT...",
       "Compares each agent's table with the coordinator's, slot by slot, and\n"
       "lists the slots where the agent is behind (missed or not yet applied an\n"
       "invalidation) or ahead (the coordinator lost state). The agent is read\n"
       "between two coordinator snapshots, so concurrent bumps are not reported.\n",
       {"volume"}},
      {"invalidate", "coherectl invalidate PATH --volume=NAME | --all --volume=NAME",
       "Force-invalidates PATH (bumps its slot), or with --all every allocated\n"
       "slot of the volume: every agent's guests drop what they cached.\n",
       {"volume", "all"}},
      {"drain", "coherectl drain --agent=HOST:PORT... [--volume=NAME]",
       "Stops the agents from granting guests new leases on the volume (default:\n"
       "every coherent volume), as when fenced; changes are served as usual and\n"
       "leases already granted run out within the lease max plus margin. For\n"
       "maintenance of an agent or a host.\n",
       {"volume"}},
      {"undrain", "coherectl undrain --agent=HOST:PORT... [--volume=NAME]",
       "Lets drained agents grant leases again.\n",
       {"volume"}},
  };
  return *commands;
}

struct Args {
  std::string coordinator;
  std::vector<std::string> agents;
  bool json = false;
  bool help = false;
  absl::Duration timeout = absl::Seconds(5);
  std::map<std::string, std::string> flags;  // command-specific
  std::vector<std::string> positional;
};

// A failure with the text to show; `code` is what --json reports.
struct Failure {
  absl::StatusCode code;
  std::string message;
};

class Ctl {
 public:
  explicit Ctl(Args args) : args_(std::move(args)) {}

  int Run(const CommandSpec& command);

 private:
  int Status();
  int VolumeDescribe();
  int Resolve();
  int Watch();
  int Invalidate();
  int TableDump();
  int TableDiff();
  int Drain(bool drain);
  // PATH's slot at the coordinator (allocating it); nullopt after reporting
  // the failure, with the exit code in *rc.
  std::optional<v1::ResolveResponse> ResolvePath(const std::string& path,
                                                const std::string& volume, int* rc);

  int Fail(const Failure& failure);
  int Fail(const absl::Status& status, const std::string& what);
  Failure Explain(const absl::Status& status, const std::string& daemon,
                  const std::string& volume) const;
  CoordinatorClient& coordinator();
  void Print(const std::string& text) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  }

  const Args args_;
  std::unique_ptr<CoordinatorClient> coordinator_;
};

CoordinatorClient& Ctl::coordinator() {
  if (coordinator_ == nullptr) {
    CoordinatorClientOptions options;
    options.deadline = args_.timeout;
    coordinator_ = CoordinatorClient::Create(args_.coordinator, options);
  }
  return *coordinator_;
}

Failure Ctl::Explain(const absl::Status& status, const std::string& daemon,
                     const std::string& volume) const {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return {status.code(), absl::StrCat(daemon, " unreachable")};
    case absl::StatusCode::kNotFound:
      if (!volume.empty()) {
        return {status.code(), absl::StrCat("unknown volume \"", volume, "\"")};
      }
      break;
    default:
      break;
  }
  return {status.code(), absl::StrCat(daemon, ": ", absl::StatusCodeToString(status.code()),
                                      ": ", status.message())};
}

int Ctl::Fail(const Failure& failure) {
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("error").BeginObject();
    w.Key("code").String(absl::StatusCodeToString(failure.code));
    w.Key("message").String(failure.message).EndObject().EndObject();
    Print(w.str() + "\n");
  }
  std::fprintf(stderr, "coherectl: %s\n", failure.message.c_str());
  return kExitFailed;
}

int Ctl::Fail(const absl::Status& status, const std::string& what) {
  return Fail(Failure{status.code(), what});
}

std::string CoordinatorName(const std::string& target) {
  return absl::StrCat("coordinator ", target);
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

int Ctl::Status() {
  absl::StatusOr<std::vector<v1::Volume>> volumes = coordinator().ListVolumes();
  if (!volumes.ok()) {
    return Fail(Explain(volumes.status(), CoordinatorName(args_.coordinator), ""));
  }
  // The coordinator reports its epoch with every snapshot page; one slot of
  // any volume is enough. No volume: no epoch to show.
  std::optional<uint64_t> epoch;
  if (!volumes->empty()) {
    absl::StatusOr<v1::SnapshotResponse> page = coordinator().Snapshot((*volumes)[0].name(), 0, 1);
    if (page.ok()) epoch = page->epoch();
  }
  struct AgentResult {
    std::string target;
    absl::StatusOr<v1::AgentStatus> status;
  };
  std::vector<AgentResult> agents;
  bool agent_failed = false;
  for (const std::string& target : args_.agents) {
    agents.push_back({target, AgentAdminClient::Create(target, args_.timeout)->GetStatus()});
    agent_failed |= !agents.back().status.ok();
  }

  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("coordinator").BeginObject();
    w.Key("target").String(args_.coordinator).Key("epoch");
    if (epoch.has_value()) {
      w.Uint(*epoch);
    } else {
      w.Null();
    }
    w.EndObject().Key("volumes").BeginArray();
    for (const v1::Volume& v : *volumes) {
      w.BeginObject().Key("name").String(v.name()).Key("capacity").Uint(v.capacity());
      w.Key("slots_used").Uint(v.slots_used()).Key("committed_seq").Uint(v.committed_seq());
      w.Key("first_retained_seq").Uint(v.first_retained_seq()).EndObject();
    }
    w.EndArray().Key("agents").BeginArray();
    for (const AgentResult& a : agents) {
      w.BeginObject().Key("target").String(a.target);
      if (!a.status.ok()) {
        Failure f = Explain(a.status.status(), "agent " + a.target, "");
        w.Key("error").BeginObject().Key("code").String(absl::StatusCodeToString(f.code));
        w.Key("message").String(f.message).EndObject().EndObject();
        continue;
      }
      const v1::AgentStatus& s = *a.status;
      w.Key("agent_id").String(s.agent_id()).Key("coordinator").String(s.coordinator());
      w.Key("epoch").Uint(s.epoch()).Key("fenced").Bool(s.fenced()).Key("volumes").BeginArray();
      for (const v1::AgentVolumeStatus& v : s.volumes()) {
        w.BeginObject().Key("name").String(v.name()).Key("coherence").String(v.coherence());
        w.Key("lease_max_ms").Uint(v.lease_max_ms()).Key("fenced").Bool(v.fenced());
        w.Key("draining").Bool(v.draining());
        w.Key("has_table").Bool(v.has_table()).Key("table_capacity").Uint(v.table_capacity());
        w.Key("table_slots_used").Uint(v.table_slots_used());
        w.Key("table_epoch").Uint(v.table_epoch());
        w.Key("table_committed_seq").Uint(v.table_committed_seq());
        w.Key("leases_granted").Uint(v.leases_granted());
        w.Key("leases_refused").Uint(v.leases_refused()).Key("bumps").Uint(v.bumps());
        w.Key("invalidations").Uint(v.invalidations()).EndObject();
      }
      w.EndArray().Key("guests").BeginArray();
      for (const v1::AgentGuestStatus& g : s.guests()) {
        w.BeginObject().Key("name").String(g.name()).Key("socket_path").String(g.socket_path());
        w.Key("volume").String(g.volume()).Key("connections").Uint(g.connections());
        w.Key("requests").Uint(g.requests()).Key("bad_chains").Uint(g.bad_chains());
        w.Key("bytes_in").Uint(g.bytes_in()).Key("bytes_out").Uint(g.bytes_out()).EndObject();
      }
      w.EndArray().EndObject();
    }
    w.EndArray().EndObject();
    Print(w.str() + "\n");
  } else {
    std::string out = absl::StrCat("coordinator ", args_.coordinator, "  epoch ",
                                   epoch.has_value() ? std::to_string(*epoch) : "-", "\n");
    TextTable vt({"VOLUME", "CAPACITY", "SLOTS USED", "COMMITTED SEQ", "FIRST RETAINED SEQ"});
    for (const v1::Volume& v : *volumes) {
      vt.AddRow({v.name(), std::to_string(v.capacity()), std::to_string(v.slots_used()),
                 std::to_string(v.committed_seq()), std::to_string(v.first_retained_seq())});
    }
    out += vt.Render();
    for (const AgentResult& a : agents) {
      if (!a.status.ok()) {
        out += absl::StrCat("\nagent ", a.target, "  unreachable\n");
        continue;
      }
      const v1::AgentStatus& s = *a.status;
      out += absl::StrCat("\nagent ", a.target, "  id ", s.agent_id().empty() ? "-" : s.agent_id(),
                          "  epoch ", s.epoch(), "  fenced ", YesNo(s.fenced()), "\n");
      TextTable t({"VOLUME", "COHERENCE", "LEASE MAX MS", "FENCED", "TABLE SLOTS", "TABLE SEQ",
                   "LEASES GRANTED", "BUMPS", "INVALIDATIONS"});
      for (const v1::AgentVolumeStatus& v : s.volumes()) {
        t.AddRow({v.name(), v.coherence(), std::to_string(v.lease_max_ms()), YesNo(v.fenced()),
                  v.has_table() ? absl::StrCat(v.table_slots_used(), "/", v.table_capacity())
                                : "-",
                  v.has_table() ? std::to_string(v.table_committed_seq()) : "-",
                  std::to_string(v.leases_granted()), std::to_string(v.bumps()),
                  std::to_string(v.invalidations())});
      }
      out += t.Render("  ");
      TextTable g({"GUEST", "VOLUME", "SOCKET", "CONNECTIONS", "REQUESTS"});
      for (const v1::AgentGuestStatus& gs : s.guests()) {
        g.AddRow({gs.name(), gs.volume(), gs.socket_path(), std::to_string(gs.connections()),
                  std::to_string(gs.requests())});
      }
      if (s.guests_size() > 0) out += g.Render("  ");
    }
    Print(out);
  }
  if (agent_failed) {
    for (const AgentResult& a : agents) {
      if (!a.status.ok()) {
        std::fprintf(stderr, "coherectl: %s\n",
                     Explain(a.status.status(), "agent " + a.target, "").message.c_str());
      }
    }
    return kExitFailed;
  }
  return kExitOk;
}

int Ctl::VolumeDescribe() {
  const std::string& name = args_.positional[0];
  absl::StatusOr<v1::Volume> v = coordinator().DescribeVolume(name);
  if (!v.ok()) return Fail(Explain(v.status(), CoordinatorName(args_.coordinator), name));
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("name").String(v->name()).Key("capacity").Uint(v->capacity());
    w.Key("slots_used").Uint(v->slots_used()).Key("committed_seq").Uint(v->committed_seq());
    w.Key("first_retained_seq").Uint(v->first_retained_seq()).EndObject();
    Print(w.str() + "\n");
  } else {
    Print(absl::StrCat("volume              ", v->name(), "\n",
                       "capacity            ", v->capacity(), "\n",
                       "slots used          ", v->slots_used(), "\n",
                       "committed seq       ", v->committed_seq(), "\n",
                       "first retained seq  ", v->first_retained_seq(), "\n"));
  }
  return kExitOk;
}

// The key of PATH, with the errors an operator understands.
absl::StatusOr<std::string> KeyOfPath(const std::string& path, Failure* failure) {
  // A FUSE mount (a coherefs host mount) hands out handles of its own
  // inodes, not the backing file's: its key would name no file of the
  // volume (and Resolve would allocate a slot for it).
  struct statfs fs = {};
  if (statfs(path.c_str(), &fs) == 0 && fs.f_type == FUSE_SUPER_MAGIC) {
    *failure = {absl::StatusCode::kInvalidArgument,
                absl::StrCat(path, ": on a FUSE mount; give the path in the volume's shared "
                                   "directory")};
    return absl::InvalidArgumentError(failure->message);
  }
  absl::StatusOr<std::string> key = FileKeyAt(AT_FDCWD, path.c_str(), 0);
  if (key.ok()) return key;
  int err = ErrnoFromStatus(key.status());
  if (err == ENOENT || err == ENOTDIR) {
    *failure = {key.status().code(), absl::StrCat("no such file: ", path)};
  } else if (err == EOPNOTSUPP) {
    *failure = {key.status().code(),
                absl::StrCat(path, ": its file system has no file handles (give the path "
                                   "in the volume's shared directory, not a FUSE mount)")};
  } else {
    *failure = {key.status().code(), absl::StrCat(path, ": ", key.status().message())};
  }
  return key.status();
}

std::optional<v1::ResolveResponse> Ctl::ResolvePath(const std::string& path,
                                                    const std::string& volume, int* rc) {
  Failure failure;
  absl::StatusOr<std::string> key = KeyOfPath(path, &failure);
  if (!key.ok()) {
    *rc = Fail(failure);
    return std::nullopt;
  }
  absl::StatusOr<v1::ResolveResponse> resolved = coordinator().Resolve(volume, {*key});
  if (!resolved.ok()) {
    *rc = Fail(Explain(resolved.status(), CoordinatorName(args_.coordinator), volume));
    return std::nullopt;
  }
  return *std::move(resolved);
}

int Ctl::Resolve() {
  const std::string& path = args_.positional[0];
  const std::string& volume = args_.flags.at("volume");
  int rc = kExitOk;
  std::optional<v1::ResolveResponse> resolved = ResolvePath(path, volume, &rc);
  if (!resolved.has_value()) return rc;
  const v1::SlotVersion sv = resolved->slots(0);
  struct AgentSlot {
    std::string target;
    absl::StatusOr<v1::GetSlotResponse> slot;
  };
  std::vector<AgentSlot> agents;
  bool failed = false;
  bool disagree = false;
  for (const std::string& target : args_.agents) {
    agents.push_back(
        {target, AgentAdminClient::Create(target, args_.timeout)->GetSlot(volume, sv.slot())});
    if (!agents.back().slot.ok()) {
      failed = true;
    } else if (!Consistent(Classify(sv.version(), agents.back().slot->version(),
                                    sv.version()))) {
      disagree = true;
    }
  }
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("volume").String(volume);
    w.Key("slot").Uint(sv.slot()).Key("version").Uint(sv.version());
    w.Key("committed_seq").Uint(resolved->committed_seq()).Key("agents").BeginArray();
    for (const AgentSlot& a : agents) {
      w.BeginObject().Key("target").String(a.target);
      if (a.slot.ok()) {
        w.Key("version").Uint(a.slot->version()).Key("fenced").Bool(a.slot->fenced());
        SlotAgreement agreement = Classify(sv.version(), a.slot->version(), sv.version());
        w.Key("state").String(SlotAgreementName(agreement));
        w.Key("agrees").Bool(Consistent(agreement));
      } else {
        Failure f = Explain(a.slot.status(), "agent " + a.target, volume);
        w.Key("error").BeginObject().Key("code").String(absl::StatusCodeToString(f.code));
        w.Key("message").String(f.message).EndObject();
      }
      w.EndObject();
    }
    w.EndArray().Key("agree").Bool(!disagree).EndObject();
    Print(w.str() + "\n");
  } else {
    std::string out = absl::StrCat("path     ", path, "\nvolume   ", volume, "\nslot     ",
                                   sv.slot(), "\nversion  ", sv.version(), " (coordinator)\n");
    if (!agents.empty()) {
      TextTable t({"AGENT", "VERSION", "FENCED", "STATE"});
      for (const AgentSlot& a : agents) {
        if (a.slot.ok()) {
          t.AddRow({a.target, std::to_string(a.slot->version()), YesNo(a.slot->fenced()),
                    SlotAgreementName(Classify(sv.version(), a.slot->version(), sv.version()))});
        } else {
          t.AddRow({a.target, "-", "-",
                    Explain(a.slot.status(), "agent " + a.target, volume).message});
        }
      }
      out += t.Render();
    }
    Print(out);
  }
  for (const AgentSlot& a : agents) {
    if (!a.slot.ok()) {
      std::fprintf(stderr, "coherectl: %s\n",
                   Explain(a.slot.status(), "agent " + a.target, volume).message.c_str());
    }
  }
  // A disagreement is a finding, not a failed operation: an agent that lags
  // by one invalidation disagrees for a moment.
  return failed ? kExitFailed : kExitOk;
}

int Ctl::Watch() {
  const std::string& volume = args_.flags.at("volume");
  uint64_t count = 0;
  uint64_t seconds = 0;
  if (args_.flags.count("count")) absl::SimpleAtoi(args_.flags.at("count"), &count);
  if (args_.flags.count("seconds")) absl::SimpleAtoi(args_.flags.at("seconds"), &seconds);
  // Check the volume (and reachability) with a unary call first: a stream
  // reports errors only once it ends.
  absl::StatusOr<v1::Volume> v = coordinator().DescribeVolume(volume);
  if (!v.ok()) return Fail(Explain(v.status(), CoordinatorName(args_.coordinator), volume));

  std::unique_ptr<SubscribeStream> stream = coordinator().Subscribe(volume, 0);
  absl::Mutex mu;
  bool done = false;      // count reached
  bool ended = false;     // the stream ended by itself
  bool resync = false;
  uint64_t printed = 0;
  std::thread reader([&] {
    v1::SubscribeResponse msg;
    bool first = true;
    while (stream->Read(&msg)) {
      std::string out;
      if (msg.has_progress() && first) {
        first = false;
        if (args_.json) {
          JsonWriter w;
          w.BeginObject().Key("event").String("subscribed").Key("volume").String(volume);
          w.Key("epoch").Uint(msg.progress().epoch());
          w.Key("committed_seq").Uint(msg.progress().committed_seq()).EndObject();
          out = w.str() + "\n";
        } else {
          out = absl::StrCat("watching volume ", volume, " (epoch ", msg.progress().epoch(),
                             ", after seq ", msg.progress().committed_seq(), ")\nSEQ  SLOT  VERSION\n");
        }
      } else if (msg.has_invalidations()) {
        for (const v1::Invalidation& inv : msg.invalidations().invalidations()) {
          if (count > 0 && printed >= count) break;
          ++printed;
          if (args_.json) {
            JsonWriter w;
            w.BeginObject().Key("event").String("invalidation").Key("seq").Uint(inv.seq());
            w.Key("slot").Uint(inv.slot()).Key("version").Uint(inv.version()).EndObject();
            absl::StrAppend(&out, w.str(), "\n");
          } else {
            absl::StrAppend(&out, inv.seq(), "  ", inv.slot(), "  ", inv.version(), "\n");
          }
        }
      } else if (msg.has_resync_required()) {
        absl::MutexLock lock(&mu);
        resync = true;
      }
      Print(out);
      if (count > 0 && printed >= count) {
        absl::MutexLock lock(&mu);
        done = true;
        return;
      }
    }
    absl::MutexLock lock(&mu);
    ended = true;
  });
  {
    absl::MutexLock lock(&mu);
    auto stop = [&] { return done || ended; };
    if (seconds > 0) {
      mu.AwaitWithTimeout(absl::Condition(&stop), absl::Seconds(seconds));
    } else {
      mu.Await(absl::Condition(&stop));
    }
  }
  stream->Cancel();
  reader.join();
  absl::Status status = stream->Finish();
  absl::MutexLock lock(&mu);
  if (resync) {
    return Fail(absl::OutOfRangeError(""), "fell behind the coordinator's change log (resync "
                                           "required); watch again");
  }
  if (ended && status.code() != absl::StatusCode::kCancelled) {
    if (status.ok()) return Fail(absl::UnavailableError(""), "the coordinator ended the stream");
    return Fail(Explain(status, CoordinatorName(args_.coordinator), volume));
  }
  return kExitOk;
}

int Ctl::Invalidate() {
  const std::string& volume = args_.flags.at("volume");
  const bool all = args_.flags.count("all") > 0;
  std::string path;
  std::vector<uint32_t> slots;
  if (all) {
    absl::StatusOr<v1::Volume> v = coordinator().DescribeVolume(volume);
    if (!v.ok()) return Fail(Explain(v.status(), CoordinatorName(args_.coordinator), volume));
    for (uint32_t s = 0; s < v->slots_used(); ++s) slots.push_back(s);
  } else {
    path = args_.positional[0];
    int rc = kExitOk;
    std::optional<v1::ResolveResponse> resolved = ResolvePath(path, volume, &rc);
    if (!resolved.has_value()) return rc;
    slots.push_back(resolved->slots(0).slot());
  }
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t last_version = 0;
  for (size_t i = 0; i < slots.size(); i += kMaxBumpBatch) {
    std::vector<uint32_t> batch(slots.begin() + i,
                                slots.begin() + std::min<size_t>(slots.size(), i + kMaxBumpBatch));
    absl::StatusOr<v1::BumpResponse> bumped = coordinator().Bump(volume, batch);
    if (!bumped.ok()) {
      return Fail(Explain(bumped.status(), CoordinatorName(args_.coordinator), volume));
    }
    if (first_seq == 0) first_seq = bumped->seqs(0);
    last_seq = bumped->seqs(bumped->seqs_size() - 1);
    last_version = bumped->versions(bumped->versions_size() - 1);
  }
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("volume").String(volume);
    if (!all) {
      w.Key("path").String(path).Key("slot").Uint(slots[0]).Key("version").Uint(last_version);
      w.Key("seq").Uint(last_seq);
    } else {
      w.Key("slots").Uint(slots.size()).Key("first_seq").Uint(first_seq);
      w.Key("last_seq").Uint(last_seq);
    }
    w.EndObject();
    Print(w.str() + "\n");
  } else if (!all) {
    Print(absl::StrCat("invalidated ", path, ": slot ", slots[0], " version ", last_version,
                       " seq ", last_seq, "\n"));
  } else if (slots.empty()) {
    Print(absl::StrCat("volume ", volume, " has no allocated slots; nothing to invalidate\n"));
  } else {
    Print(absl::StrCat("invalidated ", slots.size(), " slots of volume ", volume, " (seq ",
                       first_seq, "..", last_seq, ")\n"));
  }
  return kExitOk;
}

int Ctl::TableDump() {
  const std::string& volume = args_.flags.at("volume");
  std::vector<uint64_t> versions;
  uint64_t epoch = 0;
  uint64_t committed_seq = 0;
  std::string source = "coordinator";
  bool fenced = false;
  if (args_.agents.empty()) {
    uint64_t resume = 0;
    absl::StatusOr<std::vector<uint64_t>> all = coordinator().FullSnapshot(volume, &resume);
    if (!all.ok()) return Fail(Explain(all.status(), CoordinatorName(args_.coordinator), volume));
    absl::StatusOr<v1::SnapshotResponse> page = coordinator().Snapshot(volume, 0, 1);
    if (!page.ok()) return Fail(Explain(page.status(), CoordinatorName(args_.coordinator), volume));
    versions = std::move(*all);
    epoch = page->epoch();
    committed_seq = resume - 1;
  } else {
    const std::string& target = args_.agents[0];
    source = "agent " + target;
    auto agent = AgentAdminClient::Create(target, args_.timeout);
    v1::ReadTableResponse header;
    absl::StatusOr<v1::ReadTableResponse> first = agent->ReadTable(volume, 0, 1);
    if (!first.ok()) return Fail(Explain(first.status(), source, volume));
    absl::StatusOr<std::vector<uint64_t>> all =
        agent->ReadTableRange(volume, first->slots_used(), &header);
    if (!all.ok()) return Fail(Explain(all.status(), source, volume));
    versions = std::move(*all);
    epoch = header.epoch();
    committed_seq = header.committed_seq();
    fenced = header.fenced();
  }
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("source").String(source).Key("volume").String(volume);
    w.Key("epoch").Uint(epoch).Key("committed_seq").Uint(committed_seq);
    if (!args_.agents.empty()) w.Key("fenced").Bool(fenced);
    w.Key("versions").BeginArray();
    for (uint64_t v : versions) w.Uint(v);
    w.EndArray().EndObject();
    Print(w.str() + "\n");
  } else {
    std::string out = absl::StrCat(source, "  volume ", volume, "  epoch ", epoch,
                                   "  committed seq ", committed_seq,
                                   args_.agents.empty() ? "" : (fenced ? "  fenced" : ""), "\n");
    TextTable t({"SLOT", "VERSION"});
    for (size_t i = 0; i < versions.size(); ++i) {
      t.AddRow({std::to_string(i), std::to_string(versions[i])});
    }
    Print(out + t.Render());
  }
  return kExitOk;
}

int Ctl::TableDiff() {
  const std::string& volume = args_.flags.at("volume");
  struct AgentDiff {
    std::string target;
    absl::Status status;
    bool fenced = false;
    size_t compared = 0;
    std::vector<SlotDiff> diffs;
  };
  std::vector<AgentDiff> results;
  bool failed = false;
  for (const std::string& target : args_.agents) {
    AgentDiff r{target};
    uint64_t resume = 0;
    absl::StatusOr<std::vector<uint64_t>> before = coordinator().FullSnapshot(volume, &resume);
    if (!before.ok()) {
      return Fail(Explain(before.status(), CoordinatorName(args_.coordinator), volume));
    }
    v1::ReadTableResponse header;
    absl::StatusOr<std::vector<uint64_t>> agent =
        AgentAdminClient::Create(target, args_.timeout)
            ->ReadTableRange(volume, static_cast<uint32_t>(before->size()), &header);
    absl::StatusOr<std::vector<uint64_t>> after = coordinator().FullSnapshot(volume, &resume);
    if (!after.ok()) {
      return Fail(Explain(after.status(), CoordinatorName(args_.coordinator), volume));
    }
    if (!agent.ok()) {
      r.status = agent.status();
      failed = true;
    } else {
      r.fenced = header.fenced();
      r.compared = before->size();
      r.diffs = DiffTables(*before, *agent, *after);
    }
    results.push_back(std::move(r));
  }
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("volume").String(volume).Key("agents").BeginArray();
    for (const AgentDiff& r : results) {
      w.BeginObject().Key("target").String(r.target);
      if (!r.status.ok()) {
        Failure f = Explain(r.status, "agent " + r.target, volume);
        w.Key("error").BeginObject().Key("code").String(absl::StatusCodeToString(f.code));
        w.Key("message").String(f.message).EndObject().EndObject();
        continue;
      }
      w.Key("fenced").Bool(r.fenced).Key("compared").Uint(r.compared).Key("differ").BeginArray();
      for (const SlotDiff& d : r.diffs) {
        w.BeginObject().Key("slot").Uint(d.slot).Key("coordinator").Uint(d.coordinator);
        w.Key("agent").Uint(d.agent).Key("state").String(SlotAgreementName(d.agreement));
        w.EndObject();
      }
      w.EndArray().EndObject();
    }
    w.EndArray().EndObject();
    Print(w.str() + "\n");
  } else {
    std::string out;
    for (const AgentDiff& r : results) {
      if (!r.status.ok()) {
        out += absl::StrCat("agent ", r.target, "  ",
                            Explain(r.status, "agent " + r.target, volume).message, "\n");
        continue;
      }
      out += absl::StrCat("agent ", r.target, "  volume ", volume, "  ", r.compared,
                          " slots compared, ", r.diffs.size(), " differ",
                          r.fenced ? "  (agent fenced)" : "", "\n");
      if (!r.diffs.empty()) {
        TextTable t({"SLOT", "COORDINATOR", "AGENT", "STATE"});
        for (const SlotDiff& d : r.diffs) {
          t.AddRow({std::to_string(d.slot), std::to_string(d.coordinator),
                    std::to_string(d.agent), SlotAgreementName(d.agreement)});
        }
        out += t.Render("  ");
      }
    }
    Print(out);
  }
  for (const AgentDiff& r : results) {
    if (!r.status.ok()) {
      std::fprintf(stderr, "coherectl: %s\n",
                   Explain(r.status, "agent " + r.target, volume).message.c_str());
    }
  }
  return failed ? kExitFailed : kExitOk;
}

int Ctl::Drain(bool drain) {
  const std::string volume = args_.flags.count("volume") ? args_.flags.at("volume") : "";
  JsonWriter w;
  w.BeginObject().Key("agents").BeginArray();
  std::string text;
  for (const std::string& target : args_.agents) {
    absl::StatusOr<v1::DrainResponse> r =
        AgentAdminClient::Create(target, args_.timeout)->Drain(volume, drain);
    if (!r.ok()) {
      // Agents before this one keep the new state: say which succeeded.
      if (!text.empty() && !args_.json) Print(text);
      Failure f = Explain(r.status(), "agent " + target, volume);
      if (r.status().code() == absl::StatusCode::kFailedPrecondition) {
        f.message = absl::StrCat("agent ", target, ": ", r.status().message());
      }
      return Fail(f);
    }
    std::vector<std::string> names(r->volumes().begin(), r->volumes().end());
    w.BeginObject().Key("agent").String(target).Key("volumes").BeginArray();
    for (const std::string& n : names) w.String(n);
    w.EndArray().EndObject();
    absl::StrAppend(&text, "agent ", target, ": ", drain ? "drained " : "undrained ",
                    names.empty() ? "no volume (coherence off everywhere)"
                                  : absl::StrJoin(names, ", "),
                    "\n");
  }
  w.EndArray().Key("draining").Bool(drain).EndObject();
  Print(args_.json ? w.str() + "\n" : text);
  return kExitOk;
}

int Ctl::Run(const CommandSpec& command) {
  const std::string name = command.name;
  if (name == "status") return Status();
  if (name == "volume describe") return VolumeDescribe();
  if (name == "resolve") return Resolve();
  if (name == "watch") return Watch();
  if (name == "table dump") return TableDump();
  if (name == "table diff") return TableDiff();
  if (name == "drain") return Drain(true);
  if (name == "undrain") return Drain(false);
  return Invalidate();
}

void PrintMainHelp(FILE* out) {
  std::fprintf(out, "coherectl: operate a coherefs cluster.\n\nCommands:\n");
  for (const CommandSpec& c : Commands()) std::fprintf(out, "  %s\n", c.usage);
  std::fprintf(out, "  coherectl help [COMMAND]\n\n%s", kGlobalHelp);
}

void PrintCommandHelp(const CommandSpec& c) {
  std::printf("usage: %s\n\n%s\n%s", c.usage, c.help, kGlobalHelp);
}

int Usage(const std::string& what, const CommandSpec* command) {
  std::fprintf(stderr, "coherectl: %s\n", what.c_str());
  if (command != nullptr) {
    std::fprintf(stderr, "usage: %s\n", command->usage);
  } else {
    std::fprintf(stderr, "run 'coherectl --help' for the commands\n");
  }
  return kExitUsage;
}

bool ParsePositiveInt(const std::string& s, uint64_t* out) {
  return absl::SimpleAtoi(s, out) && *out > 0;
}

int Main(int argc, char** argv) {
  Args args;
  const char* env = std::getenv("COHERECTL_COORDINATOR");
  args.coordinator = env != nullptr && env[0] != '\0' ? env : kDefaultCoordinator;
  std::vector<std::string> words;
  std::map<std::string, std::string> raw;  // command flags, checked below
  static const std::set<std::string> kValueFlags = {"coordinator", "agent", "timeout",
                                                    "volume", "count", "seconds"};
  static const std::set<std::string> kBoolFlags = {"json", "help", "all"};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      words.push_back(arg);
      continue;
    }
    std::string flag = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (kBoolFlags.count(flag)) {
      if (value.has_value()) return Usage(absl::StrCat("--", flag, " takes no value"), nullptr);
      if (flag == "json") {
        args.json = true;
      } else if (flag == "help") {
        args.help = true;
      } else {
        raw[flag] = "";
      }
      continue;
    }
    if (!kValueFlags.count(flag)) return Usage(absl::StrCat("unknown flag --", flag), nullptr);
    if (!value.has_value()) {
      if (i + 1 >= argc) return Usage(absl::StrCat("--", flag, " needs a value"), nullptr);
      value = argv[++i];
    }
    if (value->empty()) return Usage(absl::StrCat("--", flag, " needs a value"), nullptr);
    if (flag == "coordinator") {
      args.coordinator = *value;
    } else if (flag == "agent") {
      args.agents.push_back(*value);
    } else if (flag == "timeout") {
      uint64_t s = 0;
      if (!ParsePositiveInt(*value, &s)) {
        return Usage("--timeout: a positive number of seconds", nullptr);
      }
      args.timeout = absl::Seconds(s);
    } else {
      raw[flag] = *value;
    }
  }

  if (words.empty() || words[0] == "help") {
    if (words.size() > 1) {
      for (const CommandSpec& c : Commands()) {
        if (absl::StrCat(words[1], words.size() > 2 ? " " + words[2] : "") == c.name ||
            words[1] == c.name) {
          PrintCommandHelp(c);
          return kExitOk;
        }
      }
      return Usage(absl::StrCat("unknown command '", words[1], "'"), nullptr);
    }
    if (args.help || !words.empty()) {
      PrintMainHelp(stdout);
      return kExitOk;
    }
    PrintMainHelp(stderr);
    return kExitUsage;
  }
  const CommandSpec* command = nullptr;
  size_t consumed = 1;
  for (const CommandSpec& c : Commands()) {
    if (words[0] == c.name) {
      command = &c;
      break;
    }
    if (words.size() > 1 && absl::StrCat(words[0], " ", words[1]) == c.name) {
      command = &c;
      consumed = 2;
      break;
    }
  }
  if (command == nullptr) {
    if (words[0] == "table") {
      if (args.help) {
        PrintCommandHelp(Commands()[4]);
        return kExitOk;
      }
      return Usage("table: expected a subcommand: dump or diff", &Commands()[4]);
    }
    if (words[0] == "volume") {
      if (args.help) {
        PrintCommandHelp(Commands()[1]);
        return kExitOk;
      }
      return Usage("volume: expected a subcommand: describe", &Commands()[1]);
    }
    return Usage(absl::StrCat("unknown command '", words[0], "'"), nullptr);
  }
  if (args.help) {
    PrintCommandHelp(*command);
    return kExitOk;
  }
  args.positional.assign(words.begin() + consumed, words.end());
  for (const auto& [flag, value] : raw) {
    if (!command->flags.count(flag)) {
      return Usage(absl::StrCat(command->name, " takes no --", flag), command);
    }
  }
  args.flags = raw;
  const std::string name = command->name;
  size_t want_positional = 0;
  if (name == "volume describe" || name == "resolve") want_positional = 1;
  if (name == "invalidate") want_positional = raw.count("all") ? 0 : 1;
  if (args.positional.size() != want_positional) {
    return Usage(want_positional == 0
                     ? absl::StrCat("unexpected argument '", args.positional[0], "'")
                     : absl::StrCat(name, ": expected ", name == "volume describe" ? "NAME" : "PATH"),
                 command);
  }
  if (command->flags.count("volume") && !raw.count("volume") && name != "drain" &&
      name != "undrain") {
    return Usage(absl::StrCat(name, ": --volume is required"), command);
  }
  for (const char* flag : {"count", "seconds"}) {
    uint64_t n = 0;
    if (raw.count(flag) && !ParsePositiveInt(raw.at(flag), &n)) {
      return Usage(absl::StrCat("--", flag, ": a positive integer"), command);
    }
  }
  if (name == "table dump" && args.agents.size() > 1) {
    return Usage("table dump: at most one --agent", command);
  }
  if ((name == "table diff" || name == "drain" || name == "undrain") && args.agents.empty()) {
    return Usage(absl::StrCat(name, ": at least one --agent"), command);
  }
  Ctl ctl(std::move(args));
  return ctl.Run(*command);
}

}  // namespace
}  // namespace coherefs::client

int main(int argc, char** argv) { return coherefs::client::Main(argc, argv); }
