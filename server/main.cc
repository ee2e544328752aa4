// coherefs-coordinator: the authoritative per-file versions of every
// volume, served over gRPC (see server/README.md for flags and rules).
//
// Startup: open RocksDB under --data-dir, start a new epoch, create the
// --volumes that are missing, serve gRPC (with health and reflection) and
// Prometheus metrics. SIGTERM/SIGINT: stop accepting writes, end streams,
// shut the server down, close the store, exit 0. Bad flags: exit 2.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/failpoint.h"
#include "common/flags.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/tls_flags.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/coherence_core.h"
#include "server/coordinator_service.h"
#include "server/metrics.h"
#include "server/rocksdb_store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7420",
          "gRPC listen address host:port (port 0 picks a free port; see "
          "--port-file).");
ABSL_FLAG(std::string, data_dir, "/var/lib/coherefs/coordinator",
          "RocksDB directory (created if missing).");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9420",
          "Prometheus /metrics address host:port; empty disables.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(10),
          "Agent lease TTL granted when an agent asks for none.");
ABSL_FLAG(uint64_t, log_retention, 1000000,
          "Change-log entries kept per volume (0: no count limit).");
ABSL_FLAG(absl::Duration, log_retention_age, absl::ZeroDuration(),
          "Drop change-log entries older than this (0: no age limit).");
ABSL_FLAG(absl::Duration, compaction_interval, absl::Seconds(1),
          "How often the change log is compacted.");
ABSL_FLAG(absl::Duration, strict_grace, absl::Seconds(10),
          "After a restart, strict bumps wait at least this long from the start (leases "
          "granted under the previous run); at least the agents' longest lease + margin.");
ABSL_FLAG(absl::Duration, progress_interval, absl::Seconds(1),
          "How often idle subscribers get a progress mark.");
ABSL_FLAG(uint64_t, subscriber_queue_limit, 65536,
          "Live-queue entries per subscriber before it reads the stored log.");
ABSL_FLAG(std::string, volumes, "",
          "Comma-separated name[:capacity] volumes to create at start if "
          "missing.");
ABSL_FLAG(std::string, port_file, "",
          "If set, write the bound gRPC port here once serving.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn or error.");
ABSL_FLAG(std::string, health_listen, "",
          "host:port of a plaintext endpoint serving only grpc.health.v1 (for probes that "
          "cannot present a client certificate, e.g. kubelet's); empty disables.");

namespace coherefs::server {
namespace {

constexpr char kVersion[] = "0.1.0";

[[noreturn]] void Usage(const std::string& message) {
  fprintf(stderr, "coherefs-coordinator: %s\n", message.c_str());
  exit(2);
}

absl::Status WritePortFile(const std::string& path, int port) {
  std::string tmp = path + ".tmp";
  FILE* f = fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("open ", tmp, ": ", strerror(errno)));
  }
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

struct VolumeFlag {
  std::string name;
  uint32_t capacity = 0;
};

std::vector<VolumeFlag> ParseVolumes(const std::string& text) {
  std::vector<VolumeFlag> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    VolumeFlag v;
    v.name = std::string(parts[0]);
    if (parts.size() > 2 ||
        (parts.size() == 2 && !absl::SimpleAtoi(parts[1], &v.capacity))) {
      Usage(absl::StrCat("--volumes: bad entry '", item,
                         "' (want name[:capacity])"));
    }
    out.push_back(std::move(v));
  }
  return out;
}

int Run(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "coherefs coordinator: authoritative per-file versions and "
      "invalidation fan-out.");
  // Flags are spelled with dashes (--data-dir); absl names use underscores.
  std::vector<std::string> rest = ParseCommandLineOrExit2(argc, argv);
  if (rest.size() > 1) Usage(absl::StrCat("unexpected argument '", rest[1], "'"));

  LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    Usage(absl::StrCat("--log-level: unknown level '",
                       absl::GetFlag(FLAGS_log_level), "'"));
  }
  SetLogLevel(level);
  SetLogComponent("coordinator");
  // Failpoints (tests only) are armed from COHEREFS_FAILPOINTS at load.
  for (const std::string& name : UnknownArmedFailpoints()) {
    LOG_WARN("COHEREFS_FAILPOINTS names no failpoint of this binary")
        .Kv("failpoint", name);
  }

  // Transport security first: a coordinator without it must not start.
  const TransportSecurity security = TransportSecurityFromFlags();
  if (absl::Status s = CheckTransportSecurity(security); !s.ok()) Usage(std::string(s.message()));
  auto credentials = MakeServerCredentials(security);
  if (!credentials.ok()) Usage(std::string(credentials.status().message()));
  if (security.insecure) LOG_WARN(InsecureWarning("the coordinator's gRPC service").c_str());

  CoreOptions options;
  options.default_lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  options.log_retention_entries = absl::GetFlag(FLAGS_log_retention);
  options.log_retention_age = absl::GetFlag(FLAGS_log_retention_age);
  options.compaction_interval = absl::GetFlag(FLAGS_compaction_interval);
  options.progress_interval = absl::GetFlag(FLAGS_progress_interval);
  options.strict_grace = absl::GetFlag(FLAGS_strict_grace);
  options.subscriber_queue_limit = absl::GetFlag(FLAGS_subscriber_queue_limit);
  if (options.default_lease_ttl < options.min_lease_ttl ||
      options.default_lease_ttl > options.max_lease_ttl) {
    Usage("--lease-ttl must be between 100ms and 10m");
  }
  if (options.strict_grace < absl::ZeroDuration()) {
    Usage("--strict-grace must not be negative");
  }
  if (options.log_retention_age < absl::ZeroDuration()) {
    Usage("--log-retention-age must not be negative");
  }
  if (options.compaction_interval <= absl::ZeroDuration() ||
      options.progress_interval <= absl::ZeroDuration()) {
    Usage("--compaction-interval and --progress-interval must be positive");
  }
  if (options.subscriber_queue_limit == 0) {
    Usage("--subscriber-queue-limit must be positive");
  }
  const std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.empty() || listen.find(':') == std::string::npos) {
    Usage(absl::StrCat("--listen: want host:port, got '", listen, "'"));
  }
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) Usage("--data-dir must not be empty");
  std::vector<VolumeFlag> volumes = ParseVolumes(absl::GetFlag(FLAGS_volumes));

  // Every thread started from here on inherits the blocked mask, so the
  // signals reach only the sigtimedwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto store = RocksDbStore::Open(data_dir);
  if (!store.ok()) {
    LOG_ERROR("cannot open store").Kv("dir", data_dir).Kv("status", store.status());
    return 1;
  }
  Metrics metrics(kVersion);
  auto core = CoherenceCore::Start(store->get(), options, &metrics);
  if (!core.ok()) {
    LOG_ERROR("cannot start").Kv("dir", data_dir).Kv("status", core.status());
    return 1;
  }
  for (const VolumeFlag& v : volumes) {
    auto created = (*core)->CreateVolumeSync(v.name, v.capacity);
    if (!created.ok() &&
        created.status().code() != absl::StatusCode::kAlreadyExists) {
      LOG_ERROR("cannot create volume")
          .Kv("volume", v.name)
          .Kv("status", created.status());
      return 2;
    }
  }

  const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (!metrics_listen.empty()) {
    auto port = metrics.Expose(metrics_listen);
    if (!port.ok()) {
      LOG_ERROR("cannot serve metrics").Kv("status", port.status());
      return 1;
    }
    LOG_INFO("metrics listening").Kv("address", metrics_listen).Kv("port", *port);
  }

  CoordinatorService service(core->get(), &metrics, security.tls());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, *credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    LOG_ERROR("cannot listen").Kv("address", listen);
    return 1;
  }
  // Health only, in plaintext: it reveals nothing but serving/not serving.
  std::unique_ptr<grpc::Server> health_server;
  if (const std::string health = absl::GetFlag(FLAGS_health_listen); !health.empty()) {
    grpc::ServerBuilder health_builder;
    int health_port = 0;
    health_builder.AddListeningPort(health, grpc::InsecureServerCredentials(), &health_port);
    health_server = health_builder.BuildAndStart();
    if (health_server == nullptr || health_port == 0) {
      LOG_ERROR("cannot listen").Kv("address", health).Kv("what", "health");
      return 1;
    }
    LOG_INFO("health endpoint").Kv("address", health).Kv("port", health_port);
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    absl::Status written = WritePortFile(port_file, port);
    if (!written.ok()) {
      LOG_ERROR("cannot write port file").Kv("status", written);
      return 1;
    }
  }
  LOG_INFO("serving")
      .Kv("address", listen)
      .Kv("port", port)
      .Kv("data_dir", data_dir)
      .Kv("epoch", (*core)->epoch())
      .Kv("transport", security.insecure ? "plaintext" : "mtls")
      .Kv("version", kVersion);

  // Wait for a signal; refresh the gauges meanwhile.
  for (;;) {
    metrics.Refresh((*core)->GetStats(), (*core)->StoreSizeBytes());
    timespec timeout{1, 0};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) {
      LOG_INFO("shutting down").Kv("signal", strsignal(sig));
      break;
    }
  }
  server->GetHealthCheckService()->SetServingStatus(false);
  if (health_server != nullptr) health_server->GetHealthCheckService()->SetServingStatus(false);
  // A stop that hangs (a stream gRPC will not let go of) must not leave the
  // daemon half-alive: every acknowledged change is already synced to the
  // WAL, so exiting without closing RocksDB loses nothing.
  std::thread([] {
    absl::SleepFor(absl::Seconds(15));
    LOG_ERROR("shutdown did not finish within 15 s; exiting");
    _exit(1);
  }).detach();
  (*core)->Stop();  // ends streams, so Shutdown does not wait on them
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (health_server != nullptr) health_server->Shutdown();
  core->reset();
  store->reset();
  LOG_INFO("stopped");
  return 0;
}

}  // namespace
}  // namespace coherefs::server

int main(int argc, char** argv) { return coherefs::server::Run(argc, argv); }
