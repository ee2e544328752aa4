// table_bench: what a version check costs through the shared-memory table
// versus a GETATTR round trip (issue 4).
//
//   table_bench [--fuse-file=PATH] [--repeats=N] [--ops=N] [--json=OUT]
//
// Measures, in rounds whose order alternates (the machine is shared and
// noisy), ns per operation of:
//   table_load        one atomic load of a slot through a read-only
//                     TableReader mapping of a real VersionTable export
//                     (what a table-aware guest does), cycling over slots
//   table_is_current  the guest's full fast-path check (generation, fenced,
//                     slot, generation)
//   statx_local       statx(AT_STATX_FORCE_SYNC) of a file on a local file
//                     system (the syscall floor)
//   statx_fuse        the same on --fuse-file, a file on a FUSE mount (e.g.
//                     coherefs-agent --host-mount): AT_STATX_FORCE_SYNC makes
//                     the kernel send FUSE_GETATTR to the daemon every time,
//                     the host-side stand-in for a guest's GETATTR exit
// and prints median / min / max over the rounds; --json writes them.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/coherence/version_table.h"
#include "client/table_reader.h"

namespace {

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

struct Series {
  std::string name;
  uint64_t ops;
  std::function<uint64_t(uint64_t)> run;  // runs n ops, returns a checksum
  std::vector<double> ns_per_op;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool Flag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

int StatxForce(int fd) {
  struct statx stx;
  return statx(fd, "", AT_EMPTY_PATH | AT_STATX_FORCE_SYNC, STATX_BASIC_STATS,
               &stx);
}

}  // namespace

int main(int argc, char** argv) {
  std::string fuse_file, json_out, v;
  int repeats = 7;
  uint64_t ops = 2000000, stat_ops = 20000;
  for (int i = 1; i < argc; ++i) {
    if (Flag(argv[i], "--fuse-file", &v)) {
      fuse_file = v;
    } else if (Flag(argv[i], "--json", &v)) {
      json_out = v;
    } else if (Flag(argv[i], "--repeats", &v)) {
      repeats = std::atoi(v.c_str());
    } else if (Flag(argv[i], "--ops", &v)) {
      ops = std::strtoull(v.c_str(), nullptr, 10);
    } else if (Flag(argv[i], "--stat-ops", &v)) {
      stat_ops = std::strtoull(v.c_str(), nullptr, 10);
    } else {
      std::fprintf(stderr,
                   "usage: table_bench [--fuse-file=P] [--repeats=N] "
                   "[--ops=N] [--stat-ops=N] [--json=OUT]\n");
      return 2;
    }
  }
  if (repeats < 1 || ops == 0 || stat_ops == 0) {
    std::fprintf(stderr, "table_bench: repeats, ops, stat-ops must be > 0\n");
    return 2;
  }

  constexpr uint32_t kCapacity = 1u << 16;
  auto table = coherefs::agent::coherence::VersionTable::Create("bench",
                                                                kCapacity);
  if (!table.ok()) {
    std::fprintf(stderr, "table_bench: %s\n",
                 table.status().ToString().c_str());
    return 1;
  }
  for (uint32_t s = 0; s < kCapacity; ++s) (void)(*table)->Raise(s, s + 1);
  (*table)->SetFenced(false);
  coherefs::client::TableError error;
  auto reader =
      coherefs::client::TableReader::Open((*table)->ExportPath(), &error);
  if (reader == nullptr) {
    std::fprintf(stderr, "table_bench: %s\n", error.message.c_str());
    return 1;
  }

  char local_template[] = "/tmp/table_bench.XXXXXX";
  const int local_fd = mkstemp(local_template);
  if (local_fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  unlink(local_template);
  int fuse_fd = -1;
  if (!fuse_file.empty()) {
    fuse_fd = open(fuse_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fuse_fd < 0 || StatxForce(fuse_fd) != 0) {
      std::perror(fuse_file.c_str());
      return 1;
    }
  }

  uint64_t misses = 0, stat_errors = 0;
  std::vector<Series> series;
  series.push_back({"table_load", ops, [&](uint64_t n) {
                      uint64_t sum = 0, ver = 0;
                      for (uint64_t i = 0; i < n; ++i) {
                        reader->Version(static_cast<uint32_t>(i) &
                                            (kCapacity - 1),
                                        &ver, nullptr);
                        sum += ver;
                      }
                      return sum;
                    }});
  series.push_back({"table_is_current", ops, [&](uint64_t n) {
                      uint64_t hits = 0;
                      for (uint64_t i = 0; i < n; ++i) {
                        const uint32_t s =
                            static_cast<uint32_t>(i) & (kCapacity - 1);
                        hits += reader->IsCurrent(s, s + 1);
                      }
                      misses += n - hits;
                      return hits;
                    }});
  series.push_back({"statx_local", stat_ops, [&](uint64_t n) {
                      uint64_t bad = 0;
                      for (uint64_t i = 0; i < n; ++i) {
                        bad += StatxForce(local_fd) != 0;
                      }
                      stat_errors += bad;
                      return bad;
                    }});
  if (fuse_fd >= 0) {
    series.push_back({"statx_fuse", stat_ops, [&](uint64_t n) {
                        uint64_t bad = 0;
                        for (uint64_t i = 0; i < n; ++i) {
                          bad += StatxForce(fuse_fd) != 0;
                        }
                        stat_errors += bad;
                        return bad;
                      }});
  }

  uint64_t checksum = 0;
  for (int r = 0; r < repeats; ++r) {
    // Alternate direction per round so no series always runs first.
    for (size_t k = 0; k < series.size(); ++k) {
      Series& s = series[r % 2 ? series.size() - 1 - k : k];
      const uint64_t t0 = NowNs();
      checksum += s.run(s.ops);
      const uint64_t t1 = NowNs();
      s.ns_per_op.push_back(double(t1 - t0) / double(s.ops));
    }
  }
  // Every fast-path check must have hit and every statx succeeded, or the
  // numbers measure something else.
  if (misses != 0 || stat_errors != 0) {
    std::fprintf(stderr,
                 "table_bench: %" PRIu64 " fast-path misses, %" PRIu64
                 " statx errors\n",
                 misses, stat_errors);
    return 1;
  }

  std::printf("%-18s %12s %12s %12s %8s %10s\n", "series", "median_ns",
              "min_ns", "max_ns", "rounds", "ops/round");
  for (const Series& s : series) {
    std::printf("%-18s %12.2f %12.2f %12.2f %8zu %10" PRIu64 "\n",
                s.name.c_str(), Median(s.ns_per_op),
                *std::min_element(s.ns_per_op.begin(), s.ns_per_op.end()),
                *std::max_element(s.ns_per_op.begin(), s.ns_per_op.end()),
                s.ns_per_op.size(), s.ops);
  }
  std::printf("(checksum %" PRIu64 ")\n", checksum);

  if (!json_out.empty()) {
    std::ofstream out(json_out);
    out << "{\n  \"benchmark\": \"table\",\n  \"repeats\": " << repeats
        << ",\n  \"fuse_file\": \"" << fuse_file << "\",\n  \"series\": {";
    for (size_t k = 0; k < series.size(); ++k) {
      const Series& s = series[k];
      out << (k ? ",\n" : "\n") << "    \"" << s.name
          << "\": {\"ops_per_round\": " << s.ops
          << ", \"median_ns_per_op\": " << Median(s.ns_per_op)
          << ", \"min_ns_per_op\": "
          << *std::min_element(s.ns_per_op.begin(), s.ns_per_op.end())
          << ", \"max_ns_per_op\": "
          << *std::max_element(s.ns_per_op.begin(), s.ns_per_op.end())
          << ", \"samples_ns_per_op\": [";
      for (size_t i = 0; i < s.ns_per_op.size(); ++i) {
        out << (i ? ", " : "") << s.ns_per_op[i];
      }
      out << "]}";
    }
    out << "\n  }\n}\n";
    if (!out) {
      std::fprintf(stderr, "table_bench: cannot write %s\n", json_out.c_str());
      return 1;
    }
  }
  close(local_fd);
  if (fuse_fd >= 0) close(fuse_fd);
  return 0;
}
