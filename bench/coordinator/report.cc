#include "bench/coordinator/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace coherefs::bench {
namespace {

// Shortest faithful rendering for CSV/JSON; JSON has no NaN.
std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

// Human rendering: integers from 100 up, three significant figures below.
std::string Human(double v) {
  if (!std::isfinite(v)) return "-";
  const double a = std::fabs(v);
  if (a >= 100) return absl::StrFormat("%.0f", v);
  if (a >= 10) return absl::StrFormat("%.1f", v);
  if (a >= 1) return absl::StrFormat("%.2f", v);
  return absl::StrFormat("%.3g", v);
}

std::string SpreadText(const Spread& s) {
  if (s.n == 0) return "-";
  if (s.n == 1) return Human(s.median);
  return absl::StrCat(Human(s.median), " [", Human(s.min), "-", Human(s.max), "]");
}

}  // namespace

std::vector<SummaryRow> Summarize(const std::vector<Sample>& samples) {
  std::vector<std::string> metric_order;
  std::map<std::tuple<std::string, int, std::string>, std::vector<double>> groups;
  for (const Sample& s : samples) {
    if (std::find(metric_order.begin(), metric_order.end(), s.metric) ==
        metric_order.end()) {
      metric_order.push_back(s.metric);
    }
    groups[{s.metric, s.subscribers, s.system}].push_back(s.value);
  }
  std::vector<SummaryRow> rows;
  for (const std::string& metric : metric_order) {
    std::map<int, SummaryRow> by_subs;
    for (const auto& [key, values] : groups) {
      const auto& [m, subs, system] = key;
      if (m != metric) continue;
      SummaryRow& row = by_subs[subs];
      row.metric = metric;
      row.subscribers = subs;
      row.by_system[system] = SpreadOf(values);
    }
    for (auto& [subs, row] : by_subs) {
      row.ratio = std::numeric_limits<double>::quiet_NaN();
      auto c = row.by_system.find("coherefs");
      auto e = row.by_system.find("etcd");
      // A ratio of signed or zero figures (fan-out, lost events) means
      // nothing.
      if (c != row.by_system.end() && e != row.by_system.end() &&
          c->second.median > 0 && e->second.median > 0) {
        row.ratio = c->second.median / e->second.median;
      }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

std::string SamplesCsv(const std::vector<Sample>& samples) {
  std::string out = "round,system,subscribers,metric,value\n";
  for (const Sample& s : samples) {
    absl::StrAppend(&out, s.round, ",", s.system, ",", s.subscribers, ",",
                    s.metric, ",", Num(s.value), "\n");
  }
  return out;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string ReportJson(const std::vector<std::pair<std::string, std::string>>& meta,
                       const std::vector<Sample>& samples,
                       const std::vector<SummaryRow>& summary) {
  std::vector<std::string> meta_items;
  for (const auto& [k, v] : meta) {
    meta_items.push_back(
        absl::StrCat("    \"", JsonEscape(k), "\": \"", JsonEscape(v), "\""));
  }
  std::vector<std::string> sample_items;
  for (const Sample& s : samples) {
    sample_items.push_back(absl::StrCat(
        "    {\"round\": ", s.round, ", \"system\": \"", JsonEscape(s.system),
        "\", \"subscribers\": ", s.subscribers, ", \"metric\": \"",
        JsonEscape(s.metric), "\", \"value\": ", Num(s.value), "}"));
  }
  std::vector<std::string> summary_items;
  for (const SummaryRow& row : summary) {
    std::vector<std::string> systems;
    for (const auto& [name, sp] : row.by_system) {
      systems.push_back(absl::StrCat("\"", JsonEscape(name), "\": {\"n\": ", sp.n,
                                     ", \"median\": ", Num(sp.median),
                                     ", \"min\": ", Num(sp.min),
                                     ", \"max\": ", Num(sp.max), "}"));
    }
    summary_items.push_back(absl::StrCat(
        "    {\"metric\": \"", JsonEscape(row.metric), "\", \"subscribers\": ",
        row.subscribers, ", ", absl::StrJoin(systems, ", "),
        ", \"ratio_coherefs_over_etcd\": ", Num(row.ratio), "}"));
  }
  return absl::StrCat("{\n  \"meta\": {\n", absl::StrJoin(meta_items, ",\n"),
                      "\n  },\n  \"samples\": [\n",
                      absl::StrJoin(sample_items, ",\n"),
                      "\n  ],\n  \"summary\": [\n",
                      absl::StrJoin(summary_items, ",\n"), "\n  ]\n}\n");
}

std::string SummaryTable(const std::vector<SummaryRow>& summary) {
  std::string out = absl::StrFormat("%-28s %5s  %-30s %-30s %-20s %s\n", "metric",
                                    "subs", "coherefs median [min-max]",
                                    "etcd median [min-max]", "host (floors)", "coherefs/etcd");
  for (const SummaryRow& row : summary) {
    auto text = [&row](const char* system) {
      auto it = row.by_system.find(system);
      return it == row.by_system.end() ? std::string("-") : SpreadText(it->second);
    };
    const std::string subs = row.subscribers > 0 ? absl::StrCat(row.subscribers) : "-";
    const std::string ratio =
        std::isfinite(row.ratio) ? absl::StrCat(Human(row.ratio), "x") : "-";
    out += absl::StrFormat("%-28s %5s  %-30s %-30s %-20s %s\n", row.metric, subs,
                           text("coherefs"), text("etcd"), text("host"), ratio);
  }
  return out;
}

}  // namespace coherefs::bench
