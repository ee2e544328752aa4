#include "bench/coordinator/etcd_target.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "bench/coordinator/loopback.h"
#include "bench/coordinator/stream_state.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace coherefs::bench {
namespace {

constexpr absl::Duration kRpcTimeout = absl::Seconds(30);

// One Watch stream with a single prefix watcher. Ops are all started before
// StartCall, and later reads only from OnReadDone, so no holds are needed.
class EtcdWatch final
    : public Subscription,
      public grpc::ClientBidiReactor<etcdserverpb::WatchRequest,
                                     etcdserverpb::WatchResponse> {
 public:
  EtcdWatch(const std::string& endpoint, EventFn on_event)
      : channel_(OwnConnectionChannel(endpoint)),
        stub_(etcdserverpb::Watch::NewStub(channel_)),
        on_event_(std::move(on_event)),
        state_("etcd watch") {
    etcdserverpb::WatchCreateRequest* create = create_.mutable_create_request();
    std::string end = kEtcdKeyPrefix;
    end.back() += 1;  // [prefix, prefix+1): every key under the prefix
    create->set_key(kEtcdKeyPrefix);
    create->set_range_end(end);
  }

  ~EtcdWatch() override {
    ctx_.TryCancel();
    state_.WaitEnded();
  }

  // Starts the stream and waits for etcd's "created" reply.
  absl::Status Start(absl::Duration timeout) {
    stub_->async()->Watch(&ctx_, this);
    StartWrite(&create_);
    StartRead(&resp_);
    StartCall();
    return state_.WaitEstablished(timeout);
  }

  absl::Status status() const override { return state_.status(); }

  void OnWriteDone(bool ok) override {
    if (!ok) state_.SetError(absl::UnavailableError("etcd watch: create not sent"));
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream is ending; OnDone follows
    const int64_t now = NowNanos();
    if (resp_.created()) state_.MarkEstablished();
    if (resp_.canceled() || resp_.compact_revision() != 0) {
      state_.SetError(absl::InternalError(absl::StrCat(
          "etcd watch canceled: ", resp_.cancel_reason(),
          " compact_revision=", resp_.compact_revision())));
    }
    for (const mvccpb::Event& ev : resp_.events()) {
      if (ev.type() != mvccpb::Event::PUT) continue;
      absl::string_view key = ev.kv().key();
      int file = -1;
      if (!absl::ConsumePrefix(&key, kEtcdKeyPrefix) ||
          !absl::SimpleAtoi(key, &file)) {
        state_.SetError(absl::InternalError(
            absl::StrCat("etcd watch: unexpected key ", ev.kv().key())));
        continue;
      }
      on_event_(file, now);
    }
    StartRead(&resp_);
  }

  void OnDone(const grpc::Status& s) override { state_.End(s); }

 private:
  // Constant after construction.
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::Watch::Stub> stub_;
  EventFn on_event_;

  // Owned by the stream's ops (one outstanding read, one write).
  grpc::ClientContext ctx_;
  etcdserverpb::WatchRequest create_;
  etcdserverpb::WatchResponse resp_;

  StreamState state_;
};

struct PutCall {
  grpc::ClientContext ctx;
  etcdserverpb::PutRequest req;
  etcdserverpb::PutResponse resp;
  BumpDoneFn done;
};

}  // namespace

std::string EtcdFileKey(int file) { return absl::StrCat(kEtcdKeyPrefix, file); }

absl::StatusOr<std::unique_ptr<EtcdTarget>> EtcdTarget::Launch(
    const EtcdOptions& options) {
  ASSIGN_OR_RETURN(int client_port, PickFreeLoopbackPort());
  ASSIGN_OR_RETURN(int peer_port, PickFreeLoopbackPort());
  if (peer_port == client_port) {
    return absl::UnavailableError("etcd: picked the same port twice");
  }
  std::unique_ptr<EtcdTarget> t(new EtcdTarget());
  t->endpoint_ = absl::StrCat("127.0.0.1:", client_port);
  t->log_path_ = absl::StrCat(options.work_dir, "/etcd.log");
  const std::string client_url = absl::StrCat("http://", t->endpoint_);
  const std::string peer_url = absl::StrCat("http://127.0.0.1:", peer_port);
  RETURN_IF_ERROR(t->process_.Start(
      {options.binary, "--name", "bench", "--data-dir",
       absl::StrCat(options.work_dir, "/data"), "--listen-client-urls",
       client_url, "--advertise-client-urls", client_url,
       "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
       peer_url, "--initial-cluster", absl::StrCat("bench=", peer_url),
       "--initial-cluster-state", "new"},
      t->log_path_));
  t->writer_channel_ = OwnConnectionChannel(t->endpoint_);
  t->kv_ = etcdserverpb::KV::NewStub(t->writer_channel_);
  t->ping_channel_ = OwnConnectionChannel(t->endpoint_);
  t->health_ = grpc::health::v1::Health::NewStub(t->ping_channel_);
  absl::Status ready = t->WaitReady(options);
  if (!ready.ok()) {
    return absl::Status(ready.code(), absl::StrCat(ready.message(),
                                                   " (log: ", t->log_path_, ")"));
  }
  return t;
}

absl::Status EtcdTarget::WaitReady(const EtcdOptions& options) {
  const absl::Time deadline = absl::Now() + options.start_timeout;
  absl::Status last = absl::UnavailableError("etcd: not started");
  while (absl::Now() < deadline) {
    if (process_.PollExit() >= 0) {
      return absl::UnavailableError("etcd exited during start");
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    ctx.set_wait_for_ready(true);
    etcdserverpb::PutRequest req;
    req.set_key("/coherefs/bench/ready");
    req.set_value("1");
    etcdserverpb::PutResponse resp;
    grpc::Status s = kv_->Put(&ctx, req, &resp);
    if (s.ok()) return absl::OkStatus();
    last = FromGrpcStatus(s);
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("etcd not ready: ", last.ToString()));
}

EtcdTarget::~EtcdTarget() {
  // Close our connections first, as for the coordinator (a graceful
  // shutdown need not wait for our idle clients).
  health_.reset();
  kv_.reset();
  ping_channel_.reset();
  writer_channel_.reset();
  process_.Stop();
}

absl::Status EtcdTarget::Prepare(int files) {
  // Creating the keys is setup, not measured; 64 Puts in flight.
  constexpr int kInFlight = 64;
  absl::Mutex mu;
  int in_flight = 0;
  absl::Status first_error;
  for (int f = 0; f < files; ++f) {
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](int* n) { return *n < kInFlight; }, &in_flight));
      if (!first_error.ok()) break;
      ++in_flight;
    }
    BumpAsync(f, [&](const absl::Status& s) {
      absl::MutexLock lock(&mu);
      --in_flight;
      if (!s.ok() && first_error.ok()) first_error = s;
    });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &in_flight));
  return first_error;
}

void EtcdTarget::BumpAsync(int file, BumpDoneFn done) {
  auto* call = new PutCall;
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
  call->req.set_key(EtcdFileKey(file));
  call->req.set_value(absl::StrCat(next_value_.fetch_add(1, std::memory_order_relaxed)));
  call->done = std::move(done);
  kv_->async()->Put(&call->ctx, &call->req, &call->resp,
                    [call](grpc::Status s) {
                      call->done(FromGrpcStatus(s));
                      delete call;
                    });
}

absl::StatusOr<std::unique_ptr<Subscription>> EtcdTarget::Subscribe(
    EventFn on_event) {
  auto watch = std::make_unique<EtcdWatch>(endpoint_, std::move(on_event));
  RETURN_IF_ERROR(watch->Start(absl::Seconds(10)));
  return watch;
}

absl::Status EtcdTarget::Ping() {
  return HealthCheck(*health_, absl::Seconds(1));
}

}  // namespace coherefs::bench
