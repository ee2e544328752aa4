#include "common/failpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <map>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"

namespace coherefs {
namespace {

using Term = Failpoint::Term;

absl::StatusOr<int64_t> ParseArg(absl::string_view action,
                                 absl::string_view* rest) {
  // rest is "(ARG)"; returns ARG.
  if (!absl::ConsumePrefix(rest, "(") || !absl::ConsumeSuffix(rest, ")")) {
    return absl::InvalidArgumentError(
        absl::StrCat("failpoint action ", action, " wants (ARG)"));
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(*rest, &v) || v < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("failpoint action ", action, ": bad argument '", *rest,
                     "'"));
  }
  return v;
}

absl::StatusOr<Term> ParseTerm(absl::string_view text) {
  Term t;
  absl::string_view s = absl::StripAsciiWhitespace(text);
  size_t pct = s.find('%');
  if (pct != absl::string_view::npos) {
    if (!absl::SimpleAtoi(s.substr(0, pct), &t.percent) || t.percent < 0 ||
        t.percent > 100) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint term '", text, "': bad percentage"));
    }
    s.remove_prefix(pct + 1);
  }
  size_t star = s.find('*');
  if (star != absl::string_view::npos) {
    if (!absl::SimpleAtoi(s.substr(0, star), &t.count) || t.count < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint term '", text, "': bad count"));
    }
    s.remove_prefix(star + 1);
  }
  size_t paren = s.find('(');
  absl::string_view action = s.substr(0, paren);
  absl::string_view args =
      paren == absl::string_view::npos ? "" : s.substr(paren);
  if (action == "off" && args.empty()) {
    t.action = Term::Action::kOff;
  } else if (action == "panic" && args.empty()) {
    t.action = Term::Action::kPanic;
  } else if (action == "exit") {
    t.action = Term::Action::kExit;
    auto v = ParseArg(action, &args);
    if (!v.ok()) return v.status();
    t.arg = *v;
  } else if (action == "sleep") {
    t.action = Term::Action::kSleep;
    auto v = ParseArg(action, &args);
    if (!v.ok()) return v.status();
    t.arg = *v;
  } else if (action == "error") {
    t.action = Term::Action::kError;
    t.arg = static_cast<int64_t>(absl::StatusCode::kUnavailable);
    if (!args.empty()) {
      if (!absl::ConsumePrefix(&args, "(") || !absl::ConsumeSuffix(&args, ")")) {
        return absl::InvalidArgumentError("failpoint error wants (CODE)");
      }
      std::string code = absl::AsciiStrToLower(args);
      if (code == "unavailable") {
        t.arg = static_cast<int64_t>(absl::StatusCode::kUnavailable);
      } else if (code == "internal") {
        t.arg = static_cast<int64_t>(absl::StatusCode::kInternal);
      } else if (code == "resource_exhausted") {
        t.arg = static_cast<int64_t>(absl::StatusCode::kResourceExhausted);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("failpoint error: unknown code '", args, "'"));
      }
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("failpoint term '", text, "': unknown action"));
  }
  return t;
}

absl::StatusOr<std::map<std::string, std::vector<Term>>> ParseSpec(
    absl::string_view spec) {
  std::map<std::string, std::vector<Term>> out;
  for (absl::string_view item : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint spec '", item, "': want name=terms"));
    }
    std::string name(absl::StripAsciiWhitespace(item.substr(0, eq)));
    if (name.empty()) {
      return absl::InvalidArgumentError("failpoint spec: empty name");
    }
    std::vector<Term> terms;
    for (absl::string_view text : absl::StrSplit(item.substr(eq + 1), "->")) {
      auto t = ParseTerm(text);
      if (!t.ok()) return t.status();
      terms.push_back(*t);
    }
    // A lone "off" disarms.
    if (terms.size() == 1 && terms[0].action == Term::Action::kOff &&
        terms[0].count < 0) {
      terms.clear();
    }
    out[name] = std::move(terms);
  }
  return out;
}

// Every failpoint of the process, and the configuration by name.
class Registry {
 public:
  static Registry& Get() {
    static Registry* r = new Registry();
    return *r;
  }

  void Define(Failpoint* fp) {
    std::vector<Term> terms;
    {
      absl::MutexLock lock(&mu_);
      defined_[fp->name()] = fp;
      auto it = armed_.find(fp->name());
      if (it == armed_.end()) return;
      terms = it->second;
    }
    fp->Arm(std::move(terms));
  }

  absl::Status Set(absl::string_view spec) {
    auto parsed = ParseSpec(spec);
    if (!parsed.ok()) return parsed.status();
    std::vector<std::pair<Failpoint*, std::vector<Term>>> arm;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [name, terms] : *parsed) {
        if (terms.empty()) {
          armed_.erase(name);
        } else {
          armed_[name] = terms;
        }
        auto it = defined_.find(name);
        if (it != defined_.end()) arm.emplace_back(it->second, terms);
      }
    }
    for (auto& [fp, terms] : arm) fp->Arm(std::move(terms));
    return absl::OkStatus();
  }

  std::vector<std::string> Defined() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [name, fp] : defined_) out.push_back(name);
    return out;
  }

  std::vector<std::string> Unknown() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [name, terms] : armed_) {
      if (defined_.count(name) == 0) out.push_back(name);
    }
    return out;
  }

 private:
  Registry() {
    // Read once, before the first failpoint is defined (static
    // initialisation), so every failpoint is armed before it can be hit.
    const char* env = getenv("COHEREFS_FAILPOINTS");
    if (env == nullptr || *env == '\0') return;
    auto parsed = ParseSpec(env);
    if (!parsed.ok()) {
      // Logging may not be set up yet; a bad spec is a broken test.
      fprintf(stderr, "COHEREFS_FAILPOINTS: %s\n",
              parsed.status().ToString().c_str());
      _exit(2);
    }
    for (auto& [name, terms] : *parsed) {
      if (!terms.empty()) armed_[name] = std::move(terms);
    }
  }

  absl::Mutex mu_;
  std::map<std::string, Failpoint*> defined_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Term>> armed_ ABSL_GUARDED_BY(mu_);
};

const char* ActionName(Term::Action a) {
  switch (a) {
    case Term::Action::kOff:
      return "off";
    case Term::Action::kPanic:
      return "panic";
    case Term::Action::kExit:
      return "exit";
    case Term::Action::kSleep:
      return "sleep";
    case Term::Action::kError:
      return "error";
  }
  return "?";
}

}  // namespace

Failpoint::Failpoint(const char* name) : name_(name) {
  Registry::Get().Define(this);
}

void Failpoint::Arm(std::vector<Term> terms) {
  absl::MutexLock lock(&mu_);
  terms_ = std::move(terms);
  current_ = 0;
  fired_ = 0;
  armed_.store(!terms_.empty(), std::memory_order_relaxed);
}

uint64_t Failpoint::fired() {
  absl::MutexLock lock(&mu_);
  return fired_;
}

absl::Status Failpoint::EvalSlow() {
  Term t;
  uint64_t hit = 0;
  {
    absl::MutexLock lock(&mu_);
    for (;;) {
      if (current_ >= terms_.size()) return absl::OkStatus();
      Term& cur = terms_[current_];
      if (cur.count == 0) {
        ++current_;
        continue;
      }
      break;
    }
    Term& cur = terms_[current_];
    if (cur.percent < 100) {
      // xorshift64: cheap, and good enough to spread test failures.
      rng_ ^= rng_ << 13;
      rng_ ^= rng_ >> 7;
      rng_ ^= rng_ << 17;
      if (static_cast<int>(rng_ % 100) >= cur.percent) return absl::OkStatus();
    }
    if (cur.count > 0) --cur.count;
    t = cur;
    if (t.action == Term::Action::kOff) return absl::OkStatus();
    hit = ++fired_;
  }
  // One line per firing, so a test can tell the failpoint was reached.
  LOG_WARN("failpoint fired")
      .Kv("failpoint", name_)
      .Kv("action", ActionName(t.action))
      .Kv("arg", t.arg)
      .Kv("hit", hit);
  switch (t.action) {
    case Term::Action::kOff:
      return absl::OkStatus();
    case Term::Action::kPanic:
      abort();
    case Term::Action::kExit:
      _exit(static_cast<int>(t.arg));
    case Term::Action::kSleep:
      absl::SleepFor(absl::Milliseconds(t.arg));
      return absl::OkStatus();
    case Term::Action::kError:
      return absl::Status(static_cast<absl::StatusCode>(t.arg),
                          absl::StrCat("failpoint ", name_, " injected error"));
  }
  return absl::OkStatus();
}

absl::Status SetFailpoints(absl::string_view spec) {
  return Registry::Get().Set(spec);
}

std::vector<std::string> DefinedFailpoints() {
  return Registry::Get().Defined();
}

std::vector<std::string> UnknownArmedFailpoints() {
  return Registry::Get().Unknown();
}

}  // namespace coherefs
