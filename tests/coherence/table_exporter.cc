// table_exporter: a test helper that holds one VersionTable and takes
// commands on stdin, so a VM test can export it to a guest and change it.
//
//   table_exporter VOLUME CAPACITY
// prints one line "path=<export path> size=<bytes>", then answers each
// command line with "ok ..." or "error <message>":
//   raise SLOT VERSION      -> ok <changed 0|1>
//   get SLOT                -> ok <version>
//   sync EPOCH SEQ USED     -> ok
//   fence 0|1               -> ok
// and exits 0 at end of input.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include "agent/coherence/version_table.h"

using coherefs::agent::coherence::VersionTable;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: table_exporter VOLUME CAPACITY\n");
    return 2;
  }
  auto table = VersionTable::Create(argv[1], std::strtoul(argv[2], nullptr, 10));
  if (!table.ok()) {
    std::printf("error %s\n", table.status().ToString().c_str());
    return 1;
  }
  std::printf("path=%s size=%" PRIu64 "\n", (*table)->ExportPath().c_str(),
              (*table)->mapping_size());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    uint64_t a = 0, b = 0, c = 0;
    if (cmd == "raise" && (in >> a >> b)) {
      auto changed = (*table)->Raise(static_cast<uint32_t>(a), b);
      if (changed.ok()) {
        std::printf("ok %d\n", *changed ? 1 : 0);
      } else {
        std::printf("error %s\n", changed.status().ToString().c_str());
      }
    } else if (cmd == "get" && (in >> a)) {
      auto v = (*table)->Load(static_cast<uint32_t>(a));
      if (v.ok()) {
        std::printf("ok %" PRIu64 "\n", *v);
      } else {
        std::printf("error %s\n", v.status().ToString().c_str());
      }
    } else if (cmd == "sync" && (in >> a >> b >> c)) {
      auto s = (*table)->SetSyncState(a, b, static_cast<uint32_t>(c));
      std::printf(s.ok() ? "ok\n" : "error %s\n", s.ToString().c_str());
    } else if (cmd == "fence" && (in >> a)) {
      (*table)->SetFenced(a != 0);
      std::printf("ok\n");
    } else {
      std::printf("error bad command '%s'\n", line.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
