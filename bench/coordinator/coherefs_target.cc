#include "bench/coordinator/coherefs_target.h"

#include <algorithm>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "bench/coordinator/loopback.h"
#include "bench/coordinator/stream_state.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace coherefs::bench {
namespace {

namespace pb = ::coherefs::v1;

constexpr absl::Duration kRpcTimeout = absl::Seconds(30);
constexpr uint32_t kVolumeCapacity = 1 << 16;
constexpr int kResolveBatch = 4096;  // the proto's per-request maximum

// One Subscribe stream. The single read is started before StartCall and
// each later one from OnReadDone, so no holds are needed.
class CoherefsSubscription final
    : public Subscription,
      public grpc::ClientReadReactor<pb::SubscribeResponse> {
 public:
  CoherefsSubscription(const std::string& endpoint,
                       const std::vector<int>& file_of_slot, EventFn on_event)
      : channel_(OwnConnectionChannel(endpoint)),
        stub_(pb::Coordinator::NewStub(channel_)),
        file_of_slot_(file_of_slot),
        on_event_(std::move(on_event)),
        state_("coherefs subscribe") {
    req_.set_volume(kBenchVolume);
    req_.set_from_seq(0);  // from now
  }

  ~CoherefsSubscription() override {
    ctx_.TryCancel();
    state_.WaitEnded();
  }

  // Starts the stream and waits for its first Progress mark.
  absl::Status Start(absl::Duration timeout) {
    stub_->async()->Subscribe(&ctx_, &req_, this);
    StartRead(&resp_);
    StartCall();
    return state_.WaitEstablished(timeout);
  }

  absl::Status status() const override { return state_.status(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream is ending; OnDone follows
    const int64_t now = NowNanos();
    switch (resp_.event_case()) {
      case pb::SubscribeResponse::kProgress:
        state_.MarkEstablished();
        break;
      case pb::SubscribeResponse::kInvalidations:
        for (const pb::Invalidation& inv : resp_.invalidations().invalidations()) {
          const int file = inv.slot() < file_of_slot_.size()
                               ? file_of_slot_[inv.slot()]
                               : -1;
          if (file < 0) {
            state_.SetError(absl::InternalError(
                absl::StrCat("coherefs subscribe: unexpected slot ", inv.slot())));
            continue;
          }
          on_event_(file, now);
        }
        break;
      case pb::SubscribeResponse::kResyncRequired:
        // The benchmark's subscribers must keep up; a resync is a loss.
        state_.SetError(absl::DataLossError(absl::StrCat(
            "coherefs subscribe: resync required at seq ",
            resp_.resync_required().needed_seq())));
        break;
      default:
        break;
    }
    StartRead(&resp_);
  }

  void OnDone(const grpc::Status& s) override { state_.End(s); }

 private:
  // Constant after construction.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Coordinator::Stub> stub_;
  const std::vector<int>& file_of_slot_;  // owned by the target
  EventFn on_event_;

  grpc::ClientContext ctx_;
  pb::SubscribeRequest req_;
  pb::SubscribeResponse resp_;

  StreamState state_;
};

// The port the coordinator wrote to `path` once serving.
absl::StatusOr<int> WaitForPortFile(ChildProcess& process, const std::string& path,
                                    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (process.PollExit() >= 0) {
      return absl::UnavailableError("coherefs-coordinator exited during start");
    }
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("coherefs-coordinator wrote no ", path));
}

struct BumpCall {
  grpc::ClientContext ctx;
  pb::BumpRequest req;
  pb::BumpResponse resp;
  BumpDoneFn done;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CoherefsTarget>> CoherefsTarget::Launch(
    const CoherefsOptions& options) {
  if (options.binary.empty()) {
    return absl::InvalidArgumentError("coherefs: no coordinator binary given");
  }
  std::unique_ptr<CoherefsTarget> t(new CoherefsTarget());
  t->log_path_ = absl::StrCat(options.work_dir, "/coordinator.log");
  const std::string port_file = absl::StrCat(options.work_dir, "/port");
  // Port 0 and --port-file: the coordinator binds a free port itself, so
  // no other process can take it between our pick and its bind.
  std::vector<std::string> argv = {
      options.binary,
      "--listen=127.0.0.1:0",
      absl::StrCat("--port-file=", port_file),
      absl::StrCat("--data-dir=", options.work_dir, "/data"),
      "--metrics-listen=127.0.0.1:0",
      "--insecure",  // loopback; the benchmark measures the coordinator, not TLS
  };
  argv.insert(argv.end(), options.extra_flags.begin(), options.extra_flags.end());
  RETURN_IF_ERROR(t->process_.Start(argv, t->log_path_));
  absl::StatusOr<int> port = WaitForPortFile(t->process_, port_file,
                                             options.start_timeout);
  if (!port.ok()) {
    return absl::Status(port.status().code(),
                        absl::StrCat(port.status().message(), " (log: ",
                                     t->log_path_, ")"));
  }
  t->endpoint_ = absl::StrCat("127.0.0.1:", *port);
  t->writer_channel_ = OwnConnectionChannel(t->endpoint_);
  t->coordinator_ = pb::Coordinator::NewStub(t->writer_channel_);
  t->ping_channel_ = OwnConnectionChannel(t->endpoint_);
  t->health_ = grpc::health::v1::Health::NewStub(t->ping_channel_);
  t->ping_coordinator_ = pb::Coordinator::NewStub(t->ping_channel_);
  absl::Status ready = t->WaitReady(options);
  if (!ready.ok()) {
    return absl::Status(ready.code(), absl::StrCat(ready.message(),
                                                   " (log: ", t->log_path_, ")"));
  }
  absl::Status health = HealthCheck(*t->health_, absl::Seconds(5));
  if (health.code() == absl::StatusCode::kUnimplemented) {
    t->ping_describe_ = true;
  } else if (!health.ok()) {
    return health;
  }
  return t;
}

absl::Status CoherefsTarget::WaitReady(const CoherefsOptions& options) {
  const absl::Time deadline = absl::Now() + options.start_timeout;
  absl::Status last = absl::UnavailableError("coordinator: not started");
  while (absl::Now() < deadline) {
    if (process_.PollExit() >= 0) {
      return absl::UnavailableError("coherefs-coordinator exited during start");
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    ctx.set_wait_for_ready(true);
    pb::CreateVolumeRequest req;
    req.set_name(kBenchVolume);
    req.set_capacity(kVolumeCapacity);
    pb::Volume resp;
    grpc::Status s = coordinator_->CreateVolume(&ctx, req, &resp);
    if (s.ok() || s.error_code() == grpc::ALREADY_EXISTS) return absl::OkStatus();
    last = FromGrpcStatus(s);
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("coordinator not ready: ", last.ToString()));
}

CoherefsTarget::~CoherefsTarget() {
  // Close our connections first, so the coordinator's graceful shutdown
  // has no client left to wait for.
  health_.reset();
  ping_coordinator_.reset();
  coordinator_.reset();
  ping_channel_.reset();
  writer_channel_.reset();
  process_.Stop();
}

absl::Status CoherefsTarget::Prepare(int files) {
  if (files > static_cast<int>(kVolumeCapacity)) {
    return absl::InvalidArgumentError("coherefs: more files than slots");
  }
  slot_of_file_.assign(files, 0);
  for (int first = 0; first < files; first += kResolveBatch) {
    const int n = std::min(kResolveBatch, files - first);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
    pb::ResolveRequest req;
    req.set_volume(kBenchVolume);
    for (int f = first; f < first + n; ++f) {
      req.add_keys(absl::StrCat("bench-file-", f));
    }
    pb::ResolveResponse resp;
    grpc::Status s = coordinator_->Resolve(&ctx, req, &resp);
    if (!s.ok()) return FromGrpcStatus(s);
    if (resp.slots_size() != n) {
      return absl::InternalError("coherefs: Resolve answered a short list");
    }
    for (int i = 0; i < n; ++i) slot_of_file_[first + i] = resp.slots(i).slot();
  }
  file_of_slot_.clear();
  for (int f = 0; f < files; ++f) {
    const uint32_t slot = slot_of_file_[f];
    if (slot >= file_of_slot_.size()) file_of_slot_.resize(slot + 1, -1);
    file_of_slot_[slot] = f;
  }
  return absl::OkStatus();
}

void CoherefsTarget::BumpAsync(int file, BumpDoneFn done) {
  if (file < 0 || file >= static_cast<int>(slot_of_file_.size())) {
    done(absl::OutOfRangeError(absl::StrCat("coherefs: file ", file, " not prepared")));
    return;
  }
  auto* call = new BumpCall;
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
  call->req.set_volume(kBenchVolume);
  call->req.add_slots(slot_of_file_[file]);
  call->done = std::move(done);
  coordinator_->async()->Bump(&call->ctx, &call->req, &call->resp,
                              [call](grpc::Status s) {
                                call->done(FromGrpcStatus(s));
                                delete call;
                              });
}

absl::StatusOr<std::unique_ptr<Subscription>> CoherefsTarget::Subscribe(
    EventFn on_event) {
  auto sub = std::make_unique<CoherefsSubscription>(endpoint_, file_of_slot_,
                                                    std::move(on_event));
  RETURN_IF_ERROR(sub->Start(absl::Seconds(10)));
  return sub;
}

absl::Status CoherefsTarget::Ping() {
  if (!ping_describe_) return HealthCheck(*health_, absl::Seconds(1));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  pb::DescribeVolumeRequest req;
  req.set_name(kBenchVolume);
  pb::Volume resp;
  return FromGrpcStatus(ping_coordinator_->DescribeVolume(&ctx, req, &resp));
}

}  // namespace coherefs::bench
