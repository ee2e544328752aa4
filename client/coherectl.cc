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
#include "client/status_view.h"
#include "client/table_diff.h"
#include "common/errno_status.h"
#include "common/file_key.h"
#include "common/tls.h"

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
    "  --tls-ca=FILE --tls-cert=FILE --tls-key=FILE\n"
    "                           mutual TLS: CA, operator certificate and key (PEM)\n"
    "  --insecure               plaintext instead (one of the two is required)\n"
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
       "Cluster status: the coordinator's epoch and volumes, the agents registered\n"
       "with it (lease live or expired, lease left, time since the last keep-alive,\n"
       "the guest lease they reported, and per volume whether their invalidation\n"
       "stream is open and the delivered and acked sequence numbers), and for every\n"
       "--agent what `agent status` shows.\n",
       {}},
      {"agent status", "coherectl agent status --agent=HOST:PORT...",
       "Each agent's own view (its admin service): link (id, epoch, fenced),\n"
       "volumes (coherence mode, lease max, table occupancy, leases, bumps) and\n"
       "guests: state (connected, idle, or evicted), cache mode, the FUSE version\n"
       "and max write INIT negotiated, connections, requests, and each virtqueue's\n"
       "size and in-flight requests (INDEX:SIZE/IN FLIGHT).\n",
       {}},
      {"guest evict", "coherectl guest evict --agent=HOST:PORT NAME",
       "Closes guest NAME's vhost-user connection now and refuses its socket's new\n"
       "connections (a reconnecting QEMU is closed at once) until `guest admit`.\n"
       "The guest's file system stops getting replies. The leases it was granted\n"
       "stay recorded until they expire, so strict writers on every agent still\n"
       "wait them out: the evicted guest may serve its cache until then, no longer.\n",
       {}},
      {"guest admit", "coherectl guest admit --agent=HOST:PORT NAME",
       "Lets an evicted guest connect again: a QEMU with `-chardev ...,reconnect=N`\n"
       "resumes its device on its next attempt; without it, restart the VM.\n",
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
  TransportSecurity transport;  // --tls-* / --insecure
  // For every channel: mutual TLS or plaintext (MakeChannelCredentials).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
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
  int AgentStatus();
  int Guest(bool evict);
  // PATH's slot at the coordinator (allocating it); nullopt after reporting
  // the failure, with the exit code in *rc.
  std::optional<v1::ResolveResponse> ResolvePath(const std::string& path,
                                                const std::string& volume, int* rc);

  int Fail(const Failure& failure);
  int Fail(const absl::Status& status, const std::string& what);
  Failure Explain(const absl::Status& status, const std::string& daemon,
                  const std::string& volume) const;
  CoordinatorClient& coordinator();
  // Each --agent's GetStatus, in order, and their views.
  struct AgentResult {
    std::string target;
    absl::StatusOr<v1::AgentStatus> status;
  };
  std::vector<AgentResult> QueryAgents();
  void WriteAgentResults(const std::vector<AgentResult>& agents, JsonWriter& w) const;
  std::string RenderAgentResults(const std::vector<AgentResult>& agents) const;
  // One stderr line per unreachable agent; kExitFailed if there was one.
  int ReportAgentErrors(const std::vector<AgentResult>& agents) const;
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
    options.credentials = args_.credentials;
    coordinator_ = CoordinatorClient::Create(args_.coordinator, options);
  }
  return *coordinator_;
}

Failure Ctl::Explain(const absl::Status& status, const std::string& daemon,
                     const std::string& volume) const {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      // A TLS mismatch also surfaces as UNAVAILABLE: say which.
      return {status.code(),
              absl::StrCat(daemon, " unreachable",
                           TransportFailureHint(status, args_.transport.insecure))};
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
  absl::StatusOr<v1::ListAgentsResponse> registered = coordinator().ListAgents();
  if (!registered.ok()) {
    return Fail(Explain(registered.status(), CoordinatorName(args_.coordinator), ""));
  }
  std::vector<AgentResult> agents = QueryAgents();

  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("coordinator").BeginObject();
    w.Key("target").String(args_.coordinator).Key("epoch").Uint(registered->epoch());
    w.Key("agents");
    WriteCoordinatorAgents(*registered, w);
    w.EndObject().Key("volumes").BeginArray();
    for (const v1::Volume& v : *volumes) {
      w.BeginObject().Key("name").String(v.name()).Key("capacity").Uint(v.capacity());
      w.Key("slots_used").Uint(v.slots_used()).Key("committed_seq").Uint(v.committed_seq());
      w.Key("first_retained_seq").Uint(v.first_retained_seq()).EndObject();
    }
    w.EndArray().Key("agents");
    WriteAgentResults(agents, w);
    w.EndObject();
    Print(w.str() + "\n");
  } else {
    std::string out =
        absl::StrCat("coordinator ", args_.coordinator, "  epoch ", registered->epoch(), "\n");
    TextTable vt({"VOLUME", "CAPACITY", "SLOTS USED", "COMMITTED SEQ", "FIRST RETAINED SEQ"});
    for (const v1::Volume& v : *volumes) {
      vt.AddRow({v.name(), std::to_string(v.capacity()), std::to_string(v.slots_used()),
                 std::to_string(v.committed_seq()), std::to_string(v.first_retained_seq())});
    }
    out += vt.Render();
    out += RenderCoordinatorAgents(*registered);
    out += RenderAgentResults(agents);
    Print(out);
  }
  return ReportAgentErrors(agents);
}

std::vector<Ctl::AgentResult> Ctl::QueryAgents() {
  std::vector<AgentResult> agents;
  for (const std::string& target : args_.agents) {
    agents.push_back(
        {target, AgentAdminClient::Create(target, args_.timeout, args_.credentials)->GetStatus()});
  }
  return agents;
}

void Ctl::WriteAgentResults(const std::vector<AgentResult>& agents, JsonWriter& w) const {
  w.BeginArray();
  for (const AgentResult& a : agents) {
    w.BeginObject().Key("target").String(a.target);
    if (!a.status.ok()) {
      Failure f = Explain(a.status.status(), "agent " + a.target, "");
      w.Key("error").BeginObject().Key("code").String(absl::StatusCodeToString(f.code));
      w.Key("message").String(f.message).EndObject().EndObject();
      continue;
    }
    WriteAgentStatus(*a.status, w);
    w.EndObject();
  }
  w.EndArray();
}

std::string Ctl::RenderAgentResults(const std::vector<AgentResult>& agents) const {
  std::string out;
  for (const AgentResult& a : agents) {
    out += a.status.ok() ? "\n" + RenderAgentStatus(a.target, *a.status)
                         : absl::StrCat("\nagent ", a.target, "  unreachable\n");
  }
  return out;
}

int Ctl::ReportAgentErrors(const std::vector<AgentResult>& agents) const {
  int rc = kExitOk;
  for (const AgentResult& a : agents) {
    if (!a.status.ok()) {
      std::fprintf(stderr, "coherectl: %s\n",
                   Explain(a.status.status(), "agent " + a.target, "").message.c_str());
      rc = kExitFailed;
    }
  }
  return rc;
}

int Ctl::AgentStatus() {
  std::vector<AgentResult> agents = QueryAgents();
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("agents");
    WriteAgentResults(agents, w);
    w.EndObject();
    Print(w.str() + "\n");
  } else {
    std::string out = RenderAgentResults(agents);
    Print(out.substr(1));  // no blank line before the first agent
  }
  return ReportAgentErrors(agents);
}

int Ctl::Guest(bool evict) {
  const std::string& target = args_.agents[0];
  const std::string& name = args_.positional[0];
  auto agent = AgentAdminClient::Create(target, args_.timeout, args_.credentials);
  bool changed = false;
  absl::Status status;
  if (evict) {
    absl::StatusOr<v1::EvictGuestResponse> r = agent->EvictGuest(name);
    status = r.status();
    if (r.ok()) changed = r->was_connected();
  } else {
    absl::StatusOr<v1::AdmitGuestResponse> r = agent->AdmitGuest(name);
    status = r.status();
    if (r.ok()) changed = r->was_evicted();
  }
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kNotFound) {
      return Fail(Failure{status.code(),
                          absl::StrCat("agent ", target, ": unknown guest \"", name, "\"")});
    }
    return Fail(Explain(status, "agent " + target, ""));
  }
  if (args_.json) {
    JsonWriter w;
    w.BeginObject().Key("agent").String(target).Key("guest").String(name);
    w.Key(evict ? "was_connected" : "was_evicted").Bool(changed);
    w.Key("evicted").Bool(evict).EndObject();
    Print(w.str() + "\n");
  } else if (evict) {
    Print(absl::StrCat("agent ", target, ": evicted guest ", name,
                       changed ? " (its connection was closed)" : " (it was not connected)",
                       "; its socket refuses connections until `coherectl guest admit`\n"));
  } else {
    Print(absl::StrCat("agent ", target, ": admitted guest ", name,
                       changed ? "" : " (it was not evicted)", "\n"));
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
        {target, AgentAdminClient::Create(target, args_.timeout, args_.credentials)->GetSlot(volume, sv.slot())});
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
    auto agent = AgentAdminClient::Create(target, args_.timeout, args_.credentials);
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
        AgentAdminClient::Create(target, args_.timeout, args_.credentials)
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
        AgentAdminClient::Create(target, args_.timeout, args_.credentials)->Drain(volume, drain);
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
  if (name == "agent status") return AgentStatus();
  if (name == "guest evict") return Guest(true);
  if (name == "guest admit") return Guest(false);
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
  // gRPC's own log lines (e.g. a TLS handshake error) would precede the one
  // line coherectl prints for the same failure; GRPC_VERBOSITY set by the
  // user still wins.
  setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  Args args;
  const char* env = std::getenv("COHERECTL_COORDINATOR");
  args.coordinator = env != nullptr && env[0] != '\0' ? env : kDefaultCoordinator;
  std::vector<std::string> words;
  std::map<std::string, std::string> raw;  // command flags, checked below
  static const std::set<std::string> kValueFlags = {
      "coordinator", "agent", "timeout", "volume", "count", "seconds",
      "tls-ca",      "tls-cert", "tls-key"};
  static const std::set<std::string> kBoolFlags = {"json", "help", "all", "insecure"};
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
      } else if (flag == "insecure") {
        args.transport.insecure = true;
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
    } else if (flag == "tls-ca") {
      args.transport.ca_file = *value;
    } else if (flag == "tls-cert") {
      args.transport.cert_file = *value;
    } else if (flag == "tls-key") {
      args.transport.key_file = *value;
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
    // A group word alone ("table", "guest", ...): name its subcommands.
    std::vector<std::string> subcommands;
    const CommandSpec* first = nullptr;
    for (const CommandSpec& c : Commands()) {
      const std::string n = c.name;
      if (n.rfind(words[0] + " ", 0) == 0) {
        if (first == nullptr) first = &c;
        subcommands.push_back(n.substr(words[0].size() + 1));
      }
    }
    if (first != nullptr) {
      if (args.help) {
        PrintCommandHelp(*first);
        return kExitOk;
      }
      return Usage(absl::StrCat(words[0], ": expected a subcommand: ",
                                absl::StrJoin(subcommands, " or ")),
                   first);
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
  if (name == "guest evict" || name == "guest admit") want_positional = 1;
  if (name == "invalidate") want_positional = raw.count("all") ? 0 : 1;
  if (args.positional.size() != want_positional) {
    return Usage(want_positional == 0
                     ? absl::StrCat("unexpected argument '", args.positional[0], "'")
                     : absl::StrCat(name, ": expected ",
                                    name == "resolve" || name == "invalidate" ? "PATH" : "NAME"),
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
  if ((name == "table diff" || name == "drain" || name == "undrain" || name == "agent status") &&
      args.agents.empty()) {
    return Usage(absl::StrCat(name, ": at least one --agent"), command);
  }
  if ((name == "guest evict" || name == "guest admit") && args.agents.size() != 1) {
    return Usage(absl::StrCat(name, ": exactly one --agent"), command);
  }
  // Transport security last, so help and usage errors need no certificates.
  auto credentials = MakeChannelCredentials(args.transport);
  if (!credentials.ok()) {
    std::fprintf(stderr, "coherectl: %s\n", std::string(credentials.status().message()).c_str());
    return kExitUsage;
  }
  args.credentials = std::move(*credentials);
  Ctl ctl(std::move(args));
  return ctl.Run(*command);
}

}  // namespace
}  // namespace coherefs::client

int main(int argc, char** argv) { return coherefs::client::Main(argc, argv); }
