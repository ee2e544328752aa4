// absl::Status <-> grpc::Status at the gRPC edges (the coordinator service
// and the client library). The two code enums have the same numbering by
// design; this maps them explicitly anyway so a mismatch cannot slip in.
// Messages are carried over unchanged. Thread-safe (pure functions).
#ifndef COHEREFS_COMMON_GRPC_STATUS_H_
#define COHEREFS_COMMON_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace coherefs {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);
// "NOT_FOUND", ... for logs and metric labels.
absl::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace coherefs

#endif  // COHEREFS_COMMON_GRPC_STATUS_H_
