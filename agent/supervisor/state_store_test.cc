// StateStore's worker side against the wire format, in one process over a
// real SOCK_SEQPACKET socketpair (the supervisor's side written with
// protocol.h); supervisor_test covers the two together across processes.
#include "agent/supervisor/state_store.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/supervisor/protocol.h"
#include "gtest/gtest.h"

namespace coherefs::agent::supervisor {
namespace {

struct Pair {
  UniqueFd supervisor;
  UniqueFd worker;
};

Pair MakePair() {
  int p[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p), 0);
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

class EnvTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv(kStateFdEnv);
    unsetenv(kRestartsEnv);
  }
};

TEST_F(EnvTest, UnsetMeansUnsupervised) {
  unsetenv(kStateFdEnv);
  auto store = StateStore::FromEnvironment();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*store, nullptr);
}

TEST_F(EnvTest, MalformedVariablesAreNamed) {
  setenv(kStateFdEnv, "abc", 1);
  auto s = StateStore::FromEnvironment().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "COHEREFS_STATE_FD=\"abc\" is not a descriptor number");

  setenv(kStateFdEnv, "-3", 1);
  EXPECT_EQ(StateStore::FromEnvironment().status().code(), absl::StatusCode::kInvalidArgument);

  setenv(kStateFdEnv, "987", 1);  // not open here
  s = StateStore::FromEnvironment().status();
  EXPECT_EQ(s.message(), "COHEREFS_STATE_FD=987: not an open descriptor");

  int pipefd[2];
  ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
  setenv(kStateFdEnv, absl::StrCat(pipefd[0]).c_str(), 1);
  s = StateStore::FromEnvironment().status();
  EXPECT_EQ(s.message(), absl::StrCat("COHEREFS_STATE_FD=", pipefd[0],
                                      ": not a SOCK_SEQPACKET socket"));
  close(pipefd[0]);
  close(pipefd[1]);

  Pair pair = MakePair();
  setenv(kStateFdEnv, absl::StrCat(pair.worker.get()).c_str(), 1);
  setenv(kRestartsEnv, "-1", 1);
  s = StateStore::FromEnvironment().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "COHEREFS_RESTARTS=\"-1\" is not a non-negative number");
}

TEST_F(EnvTest, ReadsHandOverFromTheInheritedDescriptor) {
  Pair pair = MakePair();
  const int ev = eventfd(3, EFD_CLOEXEC);
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "a", "blob-a", 0, -1).ok());
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "b/ev", "", 1, ev).ok());
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEnd, "", "", 2, -1).ok());
  close(ev);
  const int fd = pair.worker.Release();  // the store owns it now
  fcntl(fd, F_SETFD, 0);
  setenv(kStateFdEnv, absl::StrCat(fd).c_str(), 1);
  setenv(kRestartsEnv, "4", 1);
  auto store = StateStore::FromEnvironment();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->restarts(), 4u);
  EXPECT_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
  EXPECT_EQ((*store)->Names(""), (std::vector<std::string>{"a", "b/ev"}));
  EXPECT_EQ((*store)->Names("b/"), (std::vector<std::string>{"b/ev"}));
  auto e = (*store)->Take("b/ev");
  ASSERT_TRUE(e.has_value());
  uint64_t v = 0;
  ASSERT_EQ(read(e->fd.get(), &v, sizeof(v)), 8);
  EXPECT_EQ(v, 3u);
  EXPECT_FALSE((*store)->Take("b/ev").has_value());
  EXPECT_EQ((*store)->Names(""), (std::vector<std::string>{"a"}));
}

TEST(HandOverTest, CountMismatchAndEarlyCloseAreErrors) {
  {
    Pair pair = MakePair();
    ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "a", "x", 0, -1).ok());
    ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEnd, "", "", 2, -1).ok());
    auto s = StateStore::FromSocket(std::move(pair.worker), 0).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  }
  {
    Pair pair = MakePair();
    ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "a", "x", 1, -1).ok());
    auto s = StateStore::FromSocket(std::move(pair.worker), 0).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;  // promised fd missing
  }
  {
    Pair pair = MakePair();
    ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "a", "x", 0, -1).ok());
    pair.supervisor.Reset();
    auto s = StateStore::FromSocket(std::move(pair.worker), 0).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
}

TEST(RequestTest, AckCodesComeBackAndRemoveDropsTakenAndSubEntries) {
  Pair pair = MakePair();
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "c", "", 0, -1).ok());
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "c/1", "", 0, -1).ok());
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEntry, "cd", "", 0, -1).ok());
  ASSERT_TRUE(wire::Send(pair.supervisor.get(), wire::kEnd, "", "", 3, -1).ok());
  auto store = StateStore::FromSocket(std::move(pair.worker), 0);
  ASSERT_TRUE(store.ok()) << store.status();
  // A supervisor that answers: first request refused, second accepted.
  std::thread peer([fd = pair.supervisor.get()] {
    auto r = wire::Receive(fd);
    ASSERT_TRUE(r.ok() && r->parse.ok());
    EXPECT_EQ(r->message.header.op, wire::kPut);
    EXPECT_EQ(r->message.name, "n");
    EXPECT_EQ(r->message.fds.size(), 1u);
    EXPECT_TRUE(wire::Send(fd, wire::kAck, "", "store full",
                           static_cast<uint32_t>(absl::StatusCode::kResourceExhausted), -1)
                    .ok());
    r = wire::Receive(fd);
    ASSERT_TRUE(r.ok() && r->parse.ok());
    EXPECT_EQ(r->message.header.op, wire::kRemove);
    EXPECT_EQ(r->message.name, "c");
    EXPECT_TRUE(wire::Send(fd, wire::kAck, "", "", 0, -1).ok());
  });
  absl::Status put = (*store)->Put("n", "b", 0);
  EXPECT_EQ(put.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(put.message(), "supervisor: store full");
  EXPECT_TRUE((*store)->Remove("c").ok());
  peer.join();
  EXPECT_EQ((*store)->Names(""), (std::vector<std::string>{"cd"}));
  // Refused locally, never sent.
  EXPECT_EQ((*store)->Put("", "b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Put(std::string(kMaxNameBytes + 1, 'n'), "b").code(),
            absl::StatusCode::kInvalidArgument);
  // The supervisor gone: kUnavailable.
  pair.supervisor.Reset();
  EXPECT_EQ((*store)->Put("n", "b").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace coherefs::agent::supervisor
