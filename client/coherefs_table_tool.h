// The coherefs-table command line, shared by its two builds.
//
// The guest build (coherefs-table-static) links the standard library only,
// so it drops into a busybox initramfs; it reads tables. The host build
// (coherefs-table) adds `slot PATH`, which needs gRPC: it passes a
// SlotCommand here, and the static build passes nullptr (then `slot` is a
// usage error saying which binary has it).
//
// Exit codes: 0 ok, 1 error (open/validation/range/timeout/resolve),
// 2 usage. Not thread-safe (a process's main).
#ifndef COHEREFS_CLIENT_COHEREFS_TABLE_TOOL_H_
#define COHEREFS_CLIENT_COHEREFS_TABLE_TOOL_H_

#include <string>

namespace coherefs::client {

inline constexpr int kTableExitOk = 0;
inline constexpr int kTableExitError = 1;
inline constexpr int kTableExitUsage = 2;

// What `slot PATH` gets from the command line.
struct SlotRequest {
  std::string path;
  std::string coordinator;  // host:port, empty if not given
  std::string volume;       // default "default"
  bool json = false;
};

// Runs `slot` and returns the exit code.
using SlotCommand = int (*)(const SlotRequest& request);

int TableToolMain(int argc, char** argv, SlotCommand slot_command);

}  // namespace coherefs::client

#endif  // COHEREFS_CLIENT_COHEREFS_TABLE_TOOL_H_
