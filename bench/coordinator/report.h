// The benchmark's results: every figure of every round as a flat Sample,
// their summary across rounds (median [min-max]) with the ratio
// coherefs/etcd, and the three renderings (CSV of samples, JSON of
// everything, the printed table).
//
// Pure functions; thread-compatible.
#ifndef COHEREFS_BENCH_COORDINATOR_REPORT_H_
#define COHEREFS_BENCH_COORDINATOR_REPORT_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/coordinator/stats.h"

namespace coherefs::bench {

// One figure of one round. `system` is "coherefs", "etcd" or "host" (the
// fsync floor, the load average); `subscribers` is 0 where it does not
// apply.
struct Sample {
  int round = 0;
  std::string system;
  int subscribers = 0;
  std::string metric;
  double value = 0;
};

struct SummaryRow {
  std::string metric;
  int subscribers = 0;
  std::map<std::string, Spread> by_system;
  // median(coherefs) / median(etcd); NaN unless both are present and
  // positive.
  double ratio = 0;
};

// Groups samples by (metric, subscribers, system). Rows come in the order
// metrics first appear in `samples`, then by subscribers ascending.
std::vector<SummaryRow> Summarize(const std::vector<Sample>& samples);

// "round,system,subscribers,metric,value" and one line per sample.
std::string SamplesCsv(const std::vector<Sample>& samples);

// A JSON document: {"meta": {k: v...}, "samples": [...], "summary": [...]}.
// `meta` values are emitted as JSON strings.
std::string ReportJson(const std::vector<std::pair<std::string, std::string>>& meta,
                       const std::vector<Sample>& samples,
                       const std::vector<SummaryRow>& summary);

// The human table: metric, subscribers, each system's median [min-max],
// ratio coherefs/etcd.
std::string SummaryTable(const std::vector<SummaryRow>& summary);

// Escapes `s` as the contents of a JSON string (no quotes added).
std::string JsonEscape(const std::string& s);

}  // namespace coherefs::bench

#endif  // COHEREFS_BENCH_COORDINATOR_REPORT_H_
