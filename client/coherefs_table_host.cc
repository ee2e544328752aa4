// coherefs-table, host build: the table commands plus `slot PATH`.
//
// `slot` computes PATH's file key (common/file_key.h: the agent's key for
// the same inode; the last component is not followed, like lstat) and
// resolves it at the coordinator (Resolve), printing
// the slot; with --json also the key (hex) and the slot's committed
// version. Resolve allocates a slot for a key the volume has never seen
// (as an agent's first lookup would); that is harmless and lets a test ask
// before any agent touched the file.
// Exit codes: 0 ok; 1 no such path (or no file handles), coordinator
// unreachable, unknown volume; 2 usage.
#include <fcntl.h>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/coherefs_table_tool.h"
#include "client/coordinator_client.h"
#include "common/file_key.h"

namespace coherefs::client {
namespace {

int Fail(const SlotRequest& request, const absl::Status& status) {
  if (request.json) {
    std::printf("{\"error\":\"%s\"}\n",
                absl::StatusCodeToString(status.code()).c_str());
  }
  std::fprintf(stderr, "coherefs-table: slot %s: %s\n", request.path.c_str(),
               status.ToString().c_str());
  return kTableExitError;
}

int SlotMain(const SlotRequest& request) {
  absl::StatusOr<std::string> key = FileKeyAt(AT_FDCWD, request.path.c_str(), 0);
  if (!key.ok()) return Fail(request, key.status());
  CoordinatorClientOptions options;
  options.deadline = absl::Seconds(5);
  std::unique_ptr<CoordinatorClient> client =
      CoordinatorClient::Create(request.coordinator, options);
  absl::StatusOr<v1::ResolveResponse> resolved =
      client->Resolve(request.volume, {*key});
  if (!resolved.ok()) return Fail(request, resolved.status());
  if (resolved->slots_size() != 1) {
    return Fail(request, absl::InternalError("Resolve returned " +
                                             std::to_string(resolved->slots_size()) +
                                             " slots for one key"));
  }
  const v1::SlotVersion& sv = resolved->slots(0);
  if (request.json) {
    // Paths from a test's shared dir; escape the two JSON specials.
    std::string p;
    for (char c : request.path) {
      if (c == '"' || c == '\\') p.push_back('\\');
      p.push_back(c);
    }
    std::printf("{\"path\":\"%s\",\"key\":\"%s\",\"slot\":%" PRIu32
                ",\"version\":%" PRIu64 "}\n",
                p.c_str(), FileKeyHex(*key).c_str(), sv.slot(), sv.version());
  } else {
    std::printf("%" PRIu32 "\n", sv.slot());
  }
  return kTableExitOk;
}

}  // namespace
}  // namespace coherefs::client

int main(int argc, char** argv) {
  return coherefs::client::TableToolMain(argc, argv, &coherefs::client::SlotMain);
}
