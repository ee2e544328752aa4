// coherefs-table: reads an exported coherefs version table, on the host
// (the agent's export path) or in a guest (the ivshmem-plain BAR 2).
//
//   coherefs-table [--path P | --pci auto|BDF] [--json] get SLOT
//   coherefs-table [--path P | --pci auto|BDF] [--json] info
//   coherefs-table [--path P | --pci auto|BDF] [--json] watch SLOT
//                  [--timeout-ms N]
//   coherefs-table --coordinator HOST:PORT [--volume V] [--json] slot PATH
//                  (host build only)
//
// Without --path or --pci it uses --pci auto. `watch` polls the slot every
// 100 us until its version changes and prints the old and new version; it
// fails (exit 1) if nothing changed within --timeout-ms (default 10000).
// `slot` prints the slot of the file at PATH (see coherefs_table_host.cc).
// Exit codes: 0 ok, 1 error (open/validation/range/timeout), 2 usage.
// Standard library only, so it links statically into a guest initramfs.
#include "client/coherefs_table_tool.h"

#include <time.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "client/table_reader.h"

namespace coherefs::client {
namespace {

constexpr int kExitOk = kTableExitOk;
constexpr int kExitError = kTableExitError;
constexpr int kExitUsage = kTableExitUsage;

int Usage(const char* why) {
  std::fprintf(stderr,
               "coherefs-table: %s\n"
               "usage: coherefs-table [--path P | --pci auto|BDF] [--json] "
               "get SLOT | info | watch SLOT [--timeout-ms N]\n"
               "       coherefs-table --coordinator HOST:PORT [--volume V] "
               "[--json] slot PATH\n",
               why);
  return kExitUsage;
}

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

int Fail(bool json, const TableError& e) {
  if (json) {
    // Messages hold paths and numbers only; escape the two JSON specials.
    std::string m;
    for (char c : e.message) {
      if (c == '"' || c == '\\') m.push_back('\\');
      m.push_back(c);
    }
    std::printf("{\"error\":\"%s\",\"message\":\"%s\"}\n",
                TableErrcName(e.code), m.c_str());
  }
  std::fprintf(stderr, "coherefs-table: %s\n", e.message.c_str());
  return kExitError;
}

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

int TableToolMain(int argc, char** argv, SlotCommand slot_command) {
  std::string path, pci, coordinator, volume = "default";
  bool json = false;
  uint64_t timeout_ms = 10000;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* out) {
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        *out = a.substr(eq + 1);
        return true;
      }
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    const std::string flag = a.substr(0, a.find('='));
    if (flag == "--path") {
      if (!value(&path) || path.empty()) return Usage("--path needs a value");
    } else if (flag == "--pci") {
      if (!value(&pci) || pci.empty()) return Usage("--pci needs a value");
    } else if (flag == "--coordinator") {
      if (!value(&coordinator) || coordinator.empty()) {
        return Usage("--coordinator needs a value");
      }
    } else if (flag == "--volume") {
      if (!value(&volume) || volume.empty()) return Usage("--volume needs a value");
    } else if (a == "--json") {
      json = true;
    } else if (flag == "--timeout-ms") {
      std::string v;
      if (!value(&v) || !ParseU64(v, &timeout_ms)) {
        return Usage("--timeout-ms needs a number");
      }
    } else if (a == "-h" || a == "--help") {
      Usage("help");
      return kExitOk;
    } else if (a.size() > 1 && a[0] == '-') {
      return Usage(("unknown flag " + a).c_str());
    } else {
      args.push_back(a);
    }
  }
  if (!path.empty() && !pci.empty()) {
    return Usage("--path and --pci are exclusive");
  }
  if (args.empty()) return Usage("missing command");
  const std::string cmd = args[0];
  uint64_t slot64 = 0;
  if (cmd == "get" || cmd == "watch") {
    if (args.size() != 2) return Usage((cmd + " takes one SLOT").c_str());
    if (!ParseU64(args[1], &slot64) || slot64 > UINT32_MAX) {
      return Usage(("bad slot '" + args[1] + "'").c_str());
    }
  } else if (cmd == "info") {
    if (args.size() != 1) return Usage("info takes no arguments");
  } else if (cmd == "slot") {
    if (args.size() != 2) return Usage("slot takes one PATH");
    if (slot_command == nullptr) {
      return Usage("slot needs the host build (coherefs-table), not this one");
    }
    if (coordinator.empty()) return Usage("slot needs --coordinator");
    if (!path.empty() || !pci.empty()) return Usage("slot reads no table (no --path/--pci)");
    SlotRequest request;
    request.path = args[1];
    request.coordinator = coordinator;
    request.volume = volume;
    request.json = json;
    return slot_command(request);
  } else {
    return Usage(("unknown command '" + cmd + "'").c_str());
  }
  const uint32_t slot = static_cast<uint32_t>(slot64);

  TableError error;
  if (path.empty()) {
    if (!ResolvePciTable(pci.empty() ? "auto" : pci, &path, &error)) {
      return Fail(json, error);
    }
  }
  std::unique_ptr<TableReader> reader = TableReader::Open(path, &error);
  if (reader == nullptr) return Fail(json, error);

  if (cmd == "info") {
    TableInfo t;
    if (!reader->Info(&t, &error)) return Fail(json, error);
    if (json) {
      std::printf(
          "{\"path\":\"%s\",\"layout_version\":%" PRIu32
          ",\"capacity\":%" PRIu32 ",\"slots_used\":%" PRIu32
          ",\"epoch\":%" PRIu64 ",\"committed_seq\":%" PRIu64
          ",\"fenced\":%s,\"generation\":%" PRIu64 ",\"mapping_size\":%" PRIu64
          ",\"mapped_bytes\":%" PRIu64 "}\n",
          path.c_str(), t.layout_version, t.capacity, t.slots_used, t.epoch,
          t.committed_seq, t.fenced ? "true" : "false", t.generation,
          t.mapping_size, t.mapped_bytes);
    } else {
      std::printf("path=%s layout_version=%" PRIu32 " capacity=%" PRIu32
                  " slots_used=%" PRIu32 " epoch=%" PRIu64
                  " committed_seq=%" PRIu64 " fenced=%d generation=%" PRIu64
                  " mapping_size=%" PRIu64 " mapped_bytes=%" PRIu64 "\n",
                  path.c_str(), t.layout_version, t.capacity, t.slots_used,
                  t.epoch, t.committed_seq, t.fenced ? 1 : 0, t.generation,
                  t.mapping_size, t.mapped_bytes);
    }
    return kExitOk;
  }

  uint64_t version = 0;
  if (!reader->Version(slot, &version, &error)) return Fail(json, error);
  if (cmd == "get") {
    if (json) {
      std::printf("{\"slot\":%" PRIu32 ",\"version\":%" PRIu64 "}\n", slot,
                  version);
    } else {
      std::printf("%" PRIu64 "\n", version);
    }
    return kExitOk;
  }

  // watch
  const uint64_t start = NowNs();
  const uint64_t deadline = start + timeout_ms * 1000000ull;
  uint64_t now_version = version;
  for (;;) {
    reader->Version(slot, &now_version, &error);
    if (now_version != version) break;
    if (NowNs() >= deadline) {
      if (json) {
        std::printf("{\"slot\":%" PRIu32 ",\"old\":%" PRIu64
                    ",\"changed\":false,\"timeout_ms\":%" PRIu64 "}\n",
                    slot, version, timeout_ms);
      }
      std::fprintf(stderr,
                   "coherefs-table: slot %" PRIu32 " still %" PRIu64
                   " after %" PRIu64 " ms\n",
                   slot, version, timeout_ms);
      return kExitError;
    }
    struct timespec pause = {0, 100000};
    nanosleep(&pause, nullptr);
  }
  const uint64_t waited_us = (NowNs() - start) / 1000;
  if (json) {
    std::printf("{\"slot\":%" PRIu32 ",\"old\":%" PRIu64 ",\"new\":%" PRIu64
                ",\"changed\":true,\"waited_us\":%" PRIu64 "}\n",
                slot, version, now_version, waited_us);
  } else {
    std::printf("%" PRIu64 " -> %" PRIu64 "\n", version, now_version);
  }
  return kExitOk;
}

}  // namespace coherefs::client
