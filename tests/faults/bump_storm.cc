// bump_storm: a coordinator client for the fault tests (real gRPC). Modes:
//
//   bump_storm storm --target=H:P --volume=V --out=FILE [--threads=2]
//              [--keys=16] [--slots-per-bump=1]
//     Resolves keys "storm-0".."storm-K-1" (shared by every storm client,
//     so clients contend on slots), then bumps random ones from each thread
//     until SIGTERM. Every acknowledged bump appends one line
//       ack THREAD SLOT VERSION SEQ
//     to FILE with one O_APPEND write(2) after the reply arrived, so a line
//     exists only for an acknowledged bump, even if this process is killed.
//     Failed calls are retried after 20 ms and counted; on exit a line
//       done acks=N errors=N codes=CODE:N,...
//     is written.
//
//   bump_storm snapshot --target=H:P --volume=V
//     Prints "epoch E committed_seq S slots N", then "SLOT VERSION" per slot.
//
//   bump_storm stall --target=H:P --volume=V --stall-ms=MS --out=FILE
//     Subscribes from the next change on its own TCP connection, does not
//     read for MS milliseconds (the coordinator's writes to it block), then
//     reads until it has everything up to the volume's committed_seq at the
//     end of the stall (plus anything later that arrives within 2 s) and
//     writes "received N first F last L gaps G resyncs R" to FILE: G counts
//     sequence numbers skipped between consecutive invalidations.
//
// Exit: 0 done, 1 failure (printed on stderr), 2 usage.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/coordinator_client.h"
#include "common/flags.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, target, "", "coordinator host:port");
ABSL_FLAG(std::string, volume, "default", "volume");
ABSL_FLAG(std::string, out, "", "output file (storm, stall)");
ABSL_FLAG(int, threads, 2, "bumping threads (storm)");
ABSL_FLAG(int, keys, 16, "keys to bump (storm)");
ABSL_FLAG(int, slots_per_bump, 1, "slots per Bump request (storm)");
ABSL_FLAG(int, stall_ms, 5000, "how long the subscriber does not read");

namespace {

using coherefs::client::CoordinatorClient;
using coherefs::client::CoordinatorClientOptions;

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

[[noreturn]] void Fail(const std::string& what) {
  fprintf(stderr, "bump_storm: %s\n", what.c_str());
  exit(1);
}

void Append(int fd, const std::string& line) {
  if (write(fd, line.data(), line.size()) != ssize_t(line.size())) {
    Fail("write output");
  }
}

int OpenOut() {
  const std::string path = absl::GetFlag(FLAGS_out);
  if (path.empty()) Fail("--out is required");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) Fail(absl::StrCat("open ", path));
  return fd;
}

std::unique_ptr<CoordinatorClient> Connect(bool private_connection) {
  CoordinatorClientOptions options;
  options.deadline = absl::Seconds(3);
  options.private_connection = private_connection;
  return CoordinatorClient::Create(absl::GetFlag(FLAGS_target), options);
}

int Storm() {
  const int fd = OpenOut();
  auto client = Connect(false);
  const std::string volume = absl::GetFlag(FLAGS_volume);
  std::vector<std::string> keys;
  for (int i = 0; i < absl::GetFlag(FLAGS_keys); ++i) {
    keys.push_back(absl::StrCat("storm-", i));
  }
  // The coordinator may be restarting: retry (bounded) until it answers.
  std::vector<uint32_t> slots;
  for (int attempt = 0; slots.empty(); ++attempt) {
    if (g_stop.load()) return 0;
    auto r = client->Resolve(volume, keys);
    if (r.ok()) {
      for (const auto& sv : r->slots()) slots.push_back(sv.slot());
    } else if (attempt > 1500) {
      Fail(absl::StrCat("resolve: ", r.status().ToString()));
    } else {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  std::atomic<uint64_t> acks{0};
  absl::Mutex mu;
  std::map<std::string, uint64_t> codes;
  std::vector<std::thread> threads;
  for (int t = 0; t < absl::GetFlag(FLAGS_threads); ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(getpid() * 131 + t);
      const int per = std::max(1, absl::GetFlag(FLAGS_slots_per_bump));
      while (!g_stop.load()) {
        std::vector<uint32_t> bump;
        for (int i = 0; i < per; ++i) bump.push_back(slots[rng() % slots.size()]);
        // One slot at most once per request keeps "one line per slot" simple.
        std::sort(bump.begin(), bump.end());
        bump.erase(std::unique(bump.begin(), bump.end()), bump.end());
        auto r = client->Bump(volume, bump);
        if (!r.ok()) {
          {
            absl::MutexLock lock(&mu);
            ++codes[absl::StatusCodeToString(r.status().code())];
          }
          absl::SleepFor(absl::Milliseconds(20));
          continue;
        }
        if (r->versions_size() != int(bump.size())) Fail("reply size");
        std::string lines;
        for (size_t i = 0; i < bump.size(); ++i) {
          absl::StrAppend(&lines, "ack ", t, " ", bump[i], " ", r->versions(i),
                          " ", r->seqs(i), "\n");
        }
        Append(fd, lines);
        acks.fetch_add(bump.size());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string done = absl::StrCat("done acks=", acks.load(), " errors=");
  uint64_t errors = 0;
  std::string list;
  for (const auto& [code, n] : codes) {
    errors += n;
    absl::StrAppend(&list, list.empty() ? "" : ",", code, ":", n);
  }
  Append(fd, absl::StrCat(done, errors, " codes=", list, "\n"));
  close(fd);
  return 0;
}

int Snapshot() {
  auto client = Connect(false);
  const std::string volume = absl::GetFlag(FLAGS_volume);
  auto first = client->Snapshot(volume, 0, 1);
  if (!first.ok()) Fail(absl::StrCat("snapshot: ", first.status().ToString()));
  uint64_t resume = 0;
  auto all = client->FullSnapshot(volume, &resume);
  if (!all.ok()) Fail(absl::StrCat("snapshot: ", all.status().ToString()));
  std::string out = absl::StrCat("epoch ", first->epoch(), " committed_seq ",
                                 resume - 1, " slots ", all->size(), "\n");
  for (size_t i = 0; i < all->size(); ++i) {
    absl::StrAppend(&out, i, " ", (*all)[i], "\n");
  }
  fputs(out.c_str(), stdout);
  return 0;
}

int Stall() {
  const int fd = OpenOut();
  // Its own connection, with small HTTP/2 windows, so that not reading
  // soon blocks the coordinator's writes instead of filling our buffers.
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  channel_args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16384);
  CoordinatorClientOptions options;
  options.deadline = absl::Seconds(3);
  auto client = std::make_unique<CoordinatorClient>(
      grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                grpc::InsecureChannelCredentials(),
                                channel_args),
      options);
  const std::string volume = absl::GetFlag(FLAGS_volume);
  auto stream = client->Subscribe(volume, 0);
  absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_stall_ms)));
  auto info = client->DescribeVolume(volume);
  if (!info.ok()) Fail(absl::StrCat("describe: ", info.status().ToString()));
  const uint64_t target = info->committed_seq();
  uint64_t received = 0, first = 0, last = 0, gaps = 0, resyncs = 0;
  // Read on a side thread so the main thread can bound the wait.
  std::atomic<bool> reached{false};
  std::atomic<bool> ended{false};
  absl::Time idle_until = absl::InfiniteFuture();
  absl::Mutex mu;
  std::thread reader([&] {
    coherefs::v1::SubscribeResponse msg;
    while (stream->Read(&msg)) {
      absl::MutexLock lock(&mu);
      if (msg.has_resync_required()) ++resyncs;
      for (const auto& inv : msg.invalidations().invalidations()) {
        if (received == 0) {
          first = inv.seq();
        } else if (inv.seq() != last + 1) {
          gaps += inv.seq() > last ? inv.seq() - last - 1 : 1;
        }
        last = inv.seq();
        ++received;
      }
      // Done 2 s after the last invalidation once the target is reached.
      if (last >= target && msg.has_invalidations()) {
        reached.store(true);
        idle_until = absl::Now() + absl::Seconds(2);
      } else if (last >= target && !reached.load()) {
        reached.store(true);
        idle_until = absl::Now() + absl::Seconds(2);
      }
    }
    ended.store(true);
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    absl::SleepFor(absl::Milliseconds(50));
    absl::MutexLock lock(&mu);
    if (ended.load() || absl::Now() > idle_until || absl::Now() > deadline) {
      break;
    }
  }
  stream->Cancel();
  reader.join();
  absl::MutexLock lock(&mu);
  Append(fd, absl::StrCat("received ", received, " first ", first, " last ",
                          last, " gaps ", gaps, " resyncs ", resyncs,
                          " target ", target, "\n"));
  close(fd);
  return last >= target ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Flags are spelled with dashes, as in the daemons.
  std::vector<std::string> rest =
      coherefs::ParseCommandLineOrExit2(argc, argv);
  if (rest.size() != 2 || absl::GetFlag(FLAGS_target).empty()) {
    fprintf(stderr, "usage: bump_storm storm|snapshot|stall --target=H:P ...\n");
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  const std::string mode = rest[1];
  if (mode == "storm") return Storm();
  if (mode == "snapshot") return Snapshot();
  if (mode == "stall") return Stall();
  fprintf(stderr, "bump_storm: unknown mode %s\n", mode.c_str());
  return 2;
}
