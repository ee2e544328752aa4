// bump_bench: coherefs-coordinator against etcd, side by side in one run.
//
// For each round (alternating which system goes first), each system is
// started fresh on loopback with a temporary data dir and measured:
//   ping      sequential grpc.health.v1 Check round trips (the gRPC floor)
//   for N in --subscribers:
//     throughput  for each C in --clients: C closed-loop durable bumps/puts
//                 with N subscribers attached, plus a check that every
//                 subscriber got every one
//     latency     an open-loop writer at --latency_rate; bump -> delivery
//                 latency to each of N subscribers, and bump -> ack latency
// and, right before each system, the disk floor: 64 B + fdatasync in the
// work dir (appending, and overwriting in place). Prints median [min-max] across rounds and the ratio coherefs/etcd;
// writes --out_json and --out_csv. See bench/README.md.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/coordinator/coherefs_target.h"
#include "bench/coordinator/etcd_target.h"
#include "bench/coordinator/report.h"
#include "bench/coordinator/workload.h"
#include "common/status_macros.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, systems, "coherefs,etcd", "Systems to measure, in round-0 order");
ABSL_FLAG(int, rounds, 5, "Rounds; the order of systems alternates per round");
ABSL_FLAG(std::string, subscribers, "1,8,64", "Subscriber counts");
ABSL_FLAG(std::string, clients, "16,64",
          "Throughput: bumps in flight (closed-loop clients), one run per value");
ABSL_FLAG(double, warmup_seconds, 0.5, "Throughput: unmeasured warm-up");
ABSL_FLAG(double, throughput_seconds, 3, "Throughput: measured window");
ABSL_FLAG(double, latency_rate, 200, "Latency: bumps per second (open loop)");
ABSL_FLAG(double, latency_seconds, 3, "Latency: writer duration");
ABSL_FLAG(double, drain_timeout_seconds, 10,
          "How long subscribers may take to receive everything after the last ack");
ABSL_FLAG(int, ping_count, 1000, "Health-check round trips per system and round");
ABSL_FLAG(int, fsync_count, 200,
          "fdatasync probes (of each kind) before each system in each round");
ABSL_FLAG(std::string, etcd_bin, "/usr/bin/etcd", "etcd server binary");
ABSL_FLAG(std::string, coordinator_bin, "", "coherefs-coordinator binary");
ABSL_FLAG(std::string, coordinator_flags, "",
          "Extra coordinator flags, comma-separated (e.g. --log-level=warn)");
ABSL_FLAG(std::string, work_dir, "",
          "Directory for data dirs, logs and the fsync probe (default: a new "
          "directory under $TMPDIR or /tmp, removed at the end)");
ABSL_FLAG(bool, keep_work_dir, false,
          "Keep the work dir this run created (a given --work_dir is never removed)");
ABSL_FLAG(std::string, out_json, "", "Write the results here as JSON");
ABSL_FLAG(std::string, out_csv, "", "Write every sample here as CSV");

namespace coherefs::bench {
namespace {

struct Config {
  std::vector<std::string> systems;
  int rounds;
  std::vector<int> subscribers;
  std::vector<int> clients;
  ThroughputOptions throughput;
  LatencyOptions latency;
  int ping_count;
  int fsync_count;
  std::string etcd_bin;
  CoherefsOptions coherefs;
  std::string work_dir;
};

absl::Duration Secs(double s) { return absl::Milliseconds(s * 1000); }

std::string FirstLineOf(const std::string& command) {
  std::string line;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[256];
    if (fgets(buf, sizeof(buf), p)) line = buf;
    pclose(p);
  }
  return std::string(absl::StripAsciiWhitespace(line));
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "model name")) {
      auto pos = line.find(':');
      if (pos != std::string::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(pos + 1)));
      }
    }
  }
  return "unknown";
}

// The 1-minute load average: these machines are shared, so every round
// records how busy the host was.
double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

// The mount (device and type) holding `path`: the longest mount point
// that prefixes it.
std::string MountOf(const std::string& path) {
  std::ifstream in("/proc/mounts");
  std::string dev, mnt, type, best;
  size_t best_len = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    f >> dev >> mnt >> type;
    if (absl::StartsWith(path, mnt) && mnt.size() >= best_len) {
      best_len = mnt.size();
      best = absl::StrCat(dev, " on ", mnt, " type ", type);
    }
  }
  return best;
}

absl::StatusOr<std::unique_ptr<Target>> LaunchSystem(const Config& cfg,
                                                     const std::string& system,
                                                     const std::string& dir,
                                                     std::string* ping_method) {
  if (system == "etcd") {
    EtcdOptions o;
    o.binary = cfg.etcd_bin;
    o.work_dir = dir;
    ASSIGN_OR_RETURN(std::unique_ptr<EtcdTarget> t, EtcdTarget::Launch(o));
    *ping_method = "health";
    return std::unique_ptr<Target>(std::move(t));
  }
  if (system == "coherefs") {
    CoherefsOptions o = cfg.coherefs;
    o.work_dir = dir;
    ASSIGN_OR_RETURN(std::unique_ptr<CoherefsTarget> t, CoherefsTarget::Launch(o));
    *ping_method = t->ping_method();
    return std::unique_ptr<Target>(std::move(t));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown system ", system));
}

// One system, one round: start it, measure everything, stop it.
absl::Status MeasureSystem(const Config& cfg, int round, const std::string& system,
                           std::vector<Sample>* samples,
                           std::vector<std::pair<std::string, std::string>>* meta) {
  const std::string dir = absl::StrCat(cfg.work_dir, "/r", round, "-", system);
  std::filesystem::create_directories(dir);
  std::string ping_method;
  ASSIGN_OR_RETURN(std::unique_ptr<Target> target,
                   LaunchSystem(cfg, system, dir, &ping_method));
  if (round == 0) meta->emplace_back(absl::StrCat(system, "_ping_method"), ping_method);
  auto add = [&](int subs, const std::string& metric, double value) {
    samples->push_back({round, system, subs, metric, value});
  };
  ThroughputOptions widest = cfg.throughput;
  widest.clients = *std::max_element(cfg.clients.begin(), cfg.clients.end());
  RETURN_IF_ERROR(target->Prepare(FilesNeeded(widest, cfg.latency)));

  ASSIGN_OR_RETURN(LatencySummary ping, MeasurePing(*target, cfg.ping_count));
  add(0, "ping_p50_us", ping.p50_us);
  add(0, "ping_p99_us", ping.p99_us);
  std::cerr << absl::StrFormat("round %d %-8s ping p50 %.0f us\n", round, system,
                               ping.p50_us);

  for (int n : cfg.subscribers) {
    std::string throughput_text;
    for (int c : cfg.clients) {
      ThroughputOptions t = cfg.throughput;
      t.clients = c;
      t.subscribers = n;
      ASSIGN_OR_RETURN(ThroughputResult tr, RunThroughput(*target, t));
      if (tr.failed > 0) {
        return absl::InternalError(absl::StrCat(system, ": ", tr.failed,
                                                " bumps failed: ", tr.first_error));
      }
      const std::string prefix = absl::StrCat("throughput_c", c, "_");
      add(n, prefix + "bumps_per_s", tr.bumps_per_s);
      add(n, prefix + "lost_events", static_cast<double>(tr.lost));
      add(n, prefix + "drain_ms", tr.drain_ms);
      absl::StrAppend(&throughput_text,
                      absl::StrFormat(" c%d %.0f/s (lost %d, drain %.0f ms);", c,
                                      tr.bumps_per_s, tr.lost, tr.drain_ms));
    }

    LatencyOptions l = cfg.latency;
    l.subscribers = n;
    ASSIGN_OR_RETURN(LatencyResult lr, RunLatency(*target, l));
    if (lr.failed > 0) {
      return absl::InternalError(absl::StrCat(system, ": ", lr.failed,
                                              " bumps failed: ", lr.first_error));
    }
    add(n, "delivery_p50_us", lr.delivery.p50_us);
    add(n, "delivery_p99_us", lr.delivery.p99_us);
    add(n, "delivery_max_us", lr.delivery.max_us);
    add(n, "ack_p50_us", lr.ack.p50_us);
    add(n, "ack_p99_us", lr.ack.p99_us);
    add(n, "fanout_p50_us", lr.fanout.p50_us);
    add(n, "fanout_p99_us", lr.fanout.p99_us);
    add(n, "latency_lost_events", static_cast<double>(lr.lost));
    add(n, "latency_duplicate_events", static_cast<double>(lr.duplicates));
    add(n, "latency_rate_achieved_per_s", lr.achieved_rate_per_s);
    std::cerr << absl::StrFormat(
        "round %d %-8s subs %2d: bumps/s%s delivery p50 %.0f us p99 %.0f us max "
        "%.0f us; ack p50 %.0f us (%d/%d delivered, lost %d, dup %d)\n",
        round, system, n, throughput_text, lr.delivery.p50_us,
        lr.delivery.p99_us, lr.delivery.max_us, lr.ack.p50_us, lr.delivered,
        lr.expected_deliveries, lr.lost, lr.duplicates);
  }
  return absl::OkStatus();
}

absl::Status MeasureHost(const Config& cfg, int round, std::vector<Sample>* samples) {
  samples->push_back({round, "host", 0, "loadavg_1m", LoadAverage()});
  for (FsyncMode mode : {FsyncMode::kAppend, FsyncMode::kOverwrite}) {
    ASSIGN_OR_RETURN(LatencySummary s, MeasureFsync(cfg.work_dir, cfg.fsync_count, mode));
    const char* name = mode == FsyncMode::kAppend ? "append" : "overwrite";
    samples->push_back({round, "host", 0, absl::StrCat("fsync_", name, "_p50_us"), s.p50_us});
    samples->push_back({round, "host", 0, absl::StrCat("fsync_", name, "_p99_us"), s.p99_us});
  }
  return absl::OkStatus();
}

absl::Status ParseCounts(const std::string& text, const char* flag,
                         std::vector<int>* out) {
  for (absl::string_view s : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int n;
    if (!absl::SimpleAtoi(s, &n) || n < 1) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": bad count ", s));
    }
    out->push_back(n);
  }
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " is empty"));
  return absl::OkStatus();
}

absl::Status ParseConfig(Config* cfg) {
  cfg->systems = absl::StrSplit(absl::GetFlag(FLAGS_systems), ',', absl::SkipEmpty());
  if (cfg->systems.empty()) return absl::InvalidArgumentError("--systems is empty");
  cfg->rounds = absl::GetFlag(FLAGS_rounds);
  if (cfg->rounds < 1) return absl::InvalidArgumentError("--rounds must be >= 1");
  RETURN_IF_ERROR(ParseCounts(absl::GetFlag(FLAGS_subscribers), "--subscribers",
                              &cfg->subscribers));
  RETURN_IF_ERROR(ParseCounts(absl::GetFlag(FLAGS_clients), "--clients", &cfg->clients));
  cfg->throughput.warmup = Secs(absl::GetFlag(FLAGS_warmup_seconds));
  cfg->throughput.duration = Secs(absl::GetFlag(FLAGS_throughput_seconds));
  cfg->throughput.drain_timeout = Secs(absl::GetFlag(FLAGS_drain_timeout_seconds));
  cfg->latency.rate_per_s = absl::GetFlag(FLAGS_latency_rate);
  cfg->latency.duration = Secs(absl::GetFlag(FLAGS_latency_seconds));
  cfg->latency.drain_timeout = cfg->throughput.drain_timeout;
  cfg->ping_count = absl::GetFlag(FLAGS_ping_count);
  cfg->fsync_count = absl::GetFlag(FLAGS_fsync_count);
  cfg->etcd_bin = absl::GetFlag(FLAGS_etcd_bin);
  cfg->coherefs.binary = absl::GetFlag(FLAGS_coordinator_bin);
  cfg->coherefs.extra_flags = absl::StrSplit(absl::GetFlag(FLAGS_coordinator_flags),
                                             ',', absl::SkipEmpty());
  for (const std::string& s : cfg->systems) {
    if (s == "coherefs" && cfg->coherefs.binary.empty()) {
      return absl::InvalidArgumentError("coherefs needs --coordinator_bin");
    }
  }
  return absl::OkStatus();
}

double MedianOf(const std::vector<SummaryRow>& summary, const std::string& metric,
                int subscribers, const std::string& system) {
  for (const SummaryRow& row : summary) {
    if (row.metric == metric && row.subscribers == subscribers) {
      auto it = row.by_system.find(system);
      if (it != row.by_system.end()) return it->second.median;
    }
  }
  return std::nan("");
}

// The physical floors measured in this run beside what each system
// achieved at the smallest subscriber count.
std::string FloorsText(const std::vector<SummaryRow>& summary) {
  std::string out = absl::StrFormat(
      "floors (medians): 64 B + fdatasync p50 append %.0f us, overwrite %.0f us; "
      "host load average %.1f\n",
      MedianOf(summary, "fsync_append_p50_us", 0, "host"),
      MedianOf(summary, "fsync_overwrite_p50_us", 0, "host"),
      MedianOf(summary, "loadavg_1m", 0, "host"));
  int smallest = 0;
  for (const SummaryRow& row : summary) {
    if (row.metric == "ack_p50_us" && (smallest == 0 || row.subscribers < smallest)) {
      smallest = row.subscribers;
    }
  }
  for (const char* system : {"coherefs", "etcd"}) {
    const double ping = MedianOf(summary, "ping_p50_us", 0, system);
    if (std::isnan(ping) || smallest == 0) continue;
    out += absl::StrFormat(
        "  %-8s health RTT p50 %.0f us | %d subscriber(s): bump ack p50 %.0f us, "
        "delivery p50 %.0f us, fan-out (receipt - ack) p50 %+.0f us\n",
        system, ping, smallest, MedianOf(summary, "ack_p50_us", smallest, system),
        MedianOf(summary, "delivery_p50_us", smallest, system),
        MedianOf(summary, "fanout_p50_us", smallest, system));
  }
  return out;
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  Config cfg;
  if (absl::Status s = ParseConfig(&cfg); !s.ok()) {
    std::cerr << "bump_bench: " << s << "\n";
    return 2;
  }
  bool own_work_dir = false;
  cfg.work_dir = absl::GetFlag(FLAGS_work_dir);
  if (cfg.work_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = absl::StrCat(tmp ? tmp : "/tmp", "/coherefs-bench-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("bump_bench: mkdtemp");
      return 1;
    }
    cfg.work_dir = templ;
    own_work_dir = true;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(cfg.work_dir, ec);
    if (ec) {
      std::cerr << "bump_bench: cannot create " << cfg.work_dir << ": " << ec.message()
                << "\n";
      return 1;
    }
  }

  utsname u{};
  uname(&u);
  std::vector<std::pair<std::string, std::string>> meta = {
      {"benchmark", "coordinator bump: coherefs vs etcd, loopback"},
      {"date_utc", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone())},
      {"host", u.nodename},
      {"kernel", absl::StrCat(u.sysname, " ", u.release)},
      {"cpu", CpuModel()},
      {"cores", absl::StrCat(std::thread::hardware_concurrency())},
      {"work_dir_mount", MountOf(cfg.work_dir)},
      {"grpc_version", grpc::Version()},
      {"etcd_version", FirstLineOf(absl::StrCat(cfg.etcd_bin, " --version 2>&1"))},
      {"etcd_durability", "default (WAL fdatasync per commit batch)"},
      {"coherefs_durability", "RocksDB WAL fsync per group commit"},
      {"coordinator_bin", cfg.coherefs.binary},
      {"systems", absl::StrJoin(cfg.systems, ",")},
      {"rounds", absl::StrCat(cfg.rounds)},
      {"subscribers", absl::StrJoin(cfg.subscribers, ",")},
      {"clients", absl::StrJoin(cfg.clients, ",")},
      {"warmup_seconds", absl::StrCat(absl::ToDoubleSeconds(cfg.throughput.warmup))},
      {"throughput_seconds", absl::StrCat(absl::ToDoubleSeconds(cfg.throughput.duration))},
      {"latency_rate_per_s", absl::StrCat(cfg.latency.rate_per_s)},
      {"latency_seconds", absl::StrCat(absl::ToDoubleSeconds(cfg.latency.duration))},
      {"ping_count", absl::StrCat(cfg.ping_count)},
      {"fsync_probe", absl::StrCat("before each system: ", cfg.fsync_count,
                                   " x (64 B + fdatasync), appending and overwriting")},
      {"nice", absl::StrCat(getpriority(PRIO_PROCESS, 0))},
  };
  std::cerr << "bump_bench: work dir " << cfg.work_dir << " (" << MountOf(cfg.work_dir)
            << ")\n";

  std::vector<Sample> samples;
  absl::Status status;
  for (int r = 0; r < cfg.rounds && status.ok(); ++r) {
    std::vector<std::string> order = cfg.systems;
    if (r % 2 == 1) std::reverse(order.begin(), order.end());
    for (const std::string& system : order) {
      // The floors right before each system, so they see the same disk and
      // load (two host samples per round).
      status = MeasureHost(cfg, r, &samples);
      if (status.ok()) status = MeasureSystem(cfg, r, system, &samples, &meta);
      if (!status.ok()) {
        status = absl::Status(status.code(), absl::StrCat("round ", r, " ", system,
                                                          ": ", status.message()));
        break;
      }
    }
  }
  meta.emplace_back("status", status.ok() ? "complete" : status.ToString());

  std::vector<SummaryRow> summary = Summarize(samples);
  std::cout << "\n" << SummaryTable(summary);
  for (const SummaryRow& row : summary) {
    if (absl::StartsWith(row.metric, "throughput_c") &&
        absl::EndsWith(row.metric, "_bumps_per_s") && std::isfinite(row.ratio)) {
      std::cout << absl::StrFormat(
          "target: durable throughput >= 5x etcd (%s, %d subscribers): %.2fx -> %s\n",
          row.metric, row.subscribers, row.ratio, row.ratio >= 5 ? "MET" : "NOT MET");
    }
    if (row.metric == "delivery_p99_us" && row.subscribers == 64 &&
        row.by_system.count("coherefs")) {
      const double p99 = row.by_system.at("coherefs").median;
      std::cout << absl::StrFormat(
          "target: coherefs delivery p99 <= 1000 us at 64 subscribers: %.0f us -> %s\n",
          p99, p99 <= 1000 ? "MET" : "NOT MET");
    }
  }

  std::cout << FloorsText(summary);

  int rc = status.ok() ? 0 : 1;
  if (!status.ok()) std::cerr << "bump_bench: FAILED: " << status << "\n";
  const std::string out_json = absl::GetFlag(FLAGS_out_json);
  const std::string out_csv = absl::GetFlag(FLAGS_out_csv);
  if (!out_json.empty()) {
    if (absl::Status s = WriteFile(out_json, ReportJson(meta, samples, summary)); !s.ok()) {
      std::cerr << "bump_bench: " << s << "\n";
      rc = 1;
    }
  }
  if (!out_csv.empty()) {
    if (absl::Status s = WriteFile(out_csv, SamplesCsv(samples)); !s.ok()) {
      std::cerr << "bump_bench: " << s << "\n";
      rc = 1;
    }
  }
  if (own_work_dir) {
    if (absl::GetFlag(FLAGS_keep_work_dir)) {
      std::cerr << "bump_bench: kept " << cfg.work_dir << "\n";
    } else {
      std::error_code ec;
      std::filesystem::remove_all(cfg.work_dir, ec);
    }
  }
  return rc;
}

}  // namespace
}  // namespace coherefs::bench

int main(int argc, char** argv) { return coherefs::bench::Main(argc, argv); }
