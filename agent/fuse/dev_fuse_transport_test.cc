// Mounts the FUSE server over FakeFileSystem through the host kernel's
// /dev/fuse and drives it with real syscalls. Needs root and /dev/fuse
// (tagged local, no-sandbox, exclusive).
#include "agent/fuse/dev_fuse_transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/fuse/fake_file_system.h"
#include "agent/fuse/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace coherefs::agent::fuse {
namespace {

std::set<std::string> ListDir(const std::string& path) {
  std::set<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = ::readdir(d)) names.insert(e->d_name);
  ::closedir(d);
  return names;
}

std::string ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<open errno " + std::to_string(errno) + ">";
  std::string data(4096, '\0');
  ssize_t n = ::read(fd, data.data(), data.size());
  ::close(fd);
  if (n < 0) return "<read errno " + std::to_string(errno) + ">";
  data.resize(n);
  return data;
}

class DevFuseTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "needs root and /dev/fuse";
    }
    char tmpl[] = "/tmp/coherefs_fuse_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    hello_ = fs_.AddFile(kRootInode, "hello", "hello world");
    sub_ = fs_.AddDir(kRootInode, "sub");
    fs_.AddFile(sub_, "a", "A");
    fs_.AddSymlink(kRootInode, "link", "hello");
    fs_.AddXattr(hello_, "user.color", "blue");
  }

  void TearDown() override {
    if (dir_.empty()) return;
    transport_.reset();  // Stop() on every exit path of the test body
    // Belt and braces: a failed Stop must not leave a mount behind.
    if (DevFuseTransport::IsMounted(dir_)) {
      ADD_FAILURE() << "still mounted after Stop: " << dir_;
      ::umount2(dir_.c_str(), MNT_DETACH);
    }
    ::rmdir(dir_.c_str());
  }

  absl::Status StartTransport(int threads = 2) {
    transport_ = std::make_unique<DevFuseTransport>();
    return transport_->Start(dir_, &server_, threads);
  }

  std::string P(const std::string& rel) const { return dir_ + "/" + rel; }

  std::string dir_;
  FakeFileSystem fs_;
  Server server_{&fs_};
  std::unique_ptr<DevFuseTransport> transport_;
  InodeId hello_ = 0, sub_ = 0;
};

TEST_F(DevFuseTransportTest, ServesRealSyscalls) {
  ASSERT_TRUE(StartTransport().ok());
  ASSERT_TRUE(DevFuseTransport::IsMounted(dir_));

  struct stat st;
  ASSERT_EQ(::stat(P("hello").c_str(), &st), 0) << errno;
  EXPECT_EQ(st.st_size, 11);
  EXPECT_EQ(st.st_mode, static_cast<mode_t>(S_IFREG | 0644));
  EXPECT_EQ(st.st_mtim.tv_sec, FakeFileSystem::kTime);
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0) << errno;
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(::stat(P("missing").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  // The kernel negotiated with our server: minor 7.38 at most.
  EXPECT_EQ(server_.session().major, 7u);
  EXPECT_LE(server_.session().minor, 38u);
  EXPECT_GE(server_.session().minor, 38u);  // Linux here is newer than 7.38

  EXPECT_EQ(ListDir(dir_), (std::set<std::string>{".", "..", "hello", "link", "sub"}));
  EXPECT_EQ(ListDir(P("sub")), (std::set<std::string>{".", "..", "a"}));
  EXPECT_EQ(ReadFile(P("hello")), "hello world");

  int fd = ::open(P("hello").c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << errno;
  ASSERT_EQ(::pwrite(fd, "HELLO", 5, 0), 5) << errno;
  char buf[32] = {};
  ASSERT_EQ(::pread(fd, buf, sizeof(buf), 0), 11);
  EXPECT_EQ(std::string(buf, 11), "HELLO world");
  ASSERT_EQ(::fsync(fd), 0) << errno;
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(fs_.data(hello_), "HELLO world");

  char value[16] = {};
  ASSERT_EQ(::getxattr(P("hello").c_str(), "user.color", value, sizeof(value)), 4) << errno;
  EXPECT_EQ(std::string(value, 4), "blue");
  EXPECT_EQ(::getxattr(P("hello").c_str(), "user.color", value, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  ASSERT_EQ(::setxattr(P("hello").c_str(), "user.new", "xyz", 3, XATTR_CREATE), 0) << errno;
  char list[64] = {};
  ssize_t list_len = ::listxattr(P("hello").c_str(), list, sizeof(list));
  EXPECT_EQ(std::string(list, std::max<ssize_t>(list_len, 0)),
            std::string("user.color\0user.new\0", 20));
  ASSERT_EQ(::removexattr(P("hello").c_str(), "user.new"), 0) << errno;
  EXPECT_EQ(::getxattr(P("hello").c_str(), "user.new", value, sizeof(value)), -1);
  EXPECT_EQ(errno, ENODATA);

  char target[64] = {};
  ASSERT_EQ(::readlink(P("link").c_str(), target, sizeof(target)), 5);
  EXPECT_EQ(std::string(target, 5), "hello");

  ASSERT_EQ(::rename(P("hello").c_str(), P("sub/moved").c_str()), 0) << errno;
  EXPECT_EQ(::access(P("hello").c_str(), F_OK), -1);
  EXPECT_EQ(ReadFile(P("sub/moved")), "HELLO world");
  EXPECT_EQ(fs_.Child(sub_, "moved"), hello_);

  ASSERT_EQ(::mkdir(P("newdir").c_str(), 0750), 0) << errno;
  fd = ::open(P("newdir/f").c_str(), O_CREAT | O_WRONLY | O_EXCL, 0600);
  ASSERT_GE(fd, 0) << errno;
  ASSERT_EQ(::write(fd, "data", 4), 4);
  ASSERT_EQ(::close(fd), 0);
  EXPECT_EQ(ReadFile(P("newdir/f")), "data");
  EXPECT_EQ(::rmdir(P("newdir").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(::unlink(P("newdir/f").c_str()), 0) << errno;
  ASSERT_EQ(::rmdir(P("newdir").c_str()), 0) << errno;
  ASSERT_EQ(::symlink("sub/moved", P("ln").c_str()), 0) << errno;
  EXPECT_EQ(ReadFile(P("ln")), "HELLO world");
  ASSERT_EQ(::link(P("sub/moved").c_str(), P("hard").c_str()), 0) << errno;
  ASSERT_EQ(::stat(P("hard").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);

  ASSERT_TRUE(transport_->Stop().ok());
  EXPECT_FALSE(DevFuseTransport::IsMounted(dir_));
  EXPECT_EQ(fs_.destroy_calls(), 1);  // handler Shutdown on Stop
  EXPECT_EQ(fs_.open_handles(), 0u);
  DevFuseTransport::Stats stats = transport_->stats();
  EXPECT_GT(stats.requests, 20u);
  EXPECT_GT(stats.replies, 20u);
  EXPECT_EQ(stats.workers_running, 0);
  EXPECT_GT(server_.stats().Get(FUSE_LOOKUP).count, 0u);
  EXPECT_EQ(server_.stats().Get(FUSE_INIT).count, 1u);
}

TEST_F(DevFuseTransportTest, ConcurrentReadersAcrossWorkerThreads) {
  ASSERT_TRUE(StartTransport(/*threads=*/3).ok());
  std::atomic<int> good{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        struct stat st;
        if (ReadFile(P("hello")) == "hello world" && ::stat(P("sub/a").c_str(), &st) == 0 &&
            st.st_size == 1) {
          good++;
        }
      }
    });
  }
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(good.load(), 200);
  EXPECT_TRUE(transport_->Stop().ok());
}

TEST_F(DevFuseTransportTest, ExternalUnmountEndsTheWorkers) {
  ASSERT_TRUE(StartTransport().ok());
  struct stat st;
  ASSERT_EQ(::stat(P("hello").c_str(), &st), 0) << errno;
  ASSERT_EQ(::umount2(dir_.c_str(), 0), 0) << errno;
  EXPECT_FALSE(DevFuseTransport::IsMounted(dir_));
  // The workers see the connection end (ENODEV / POLLERR) and exit by
  // themselves, before any Stop.
  for (int i = 0; i < 200 && transport_->stats().workers_running > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(transport_->stats().workers_running, 0);
  // Stop still joins them and succeeds.
  EXPECT_TRUE(transport_->Stop().ok());
  EXPECT_EQ(fs_.destroy_calls(), 1);
  EXPECT_TRUE(transport_->Stop().ok());  // idempotent
}

TEST_F(DevFuseTransportTest, DestructorUnmounts) {
  {
    DevFuseTransport transport;
    ASSERT_TRUE(transport.Start(dir_, &server_, 1).ok());
    ASSERT_TRUE(DevFuseTransport::IsMounted(dir_));
    EXPECT_EQ(ReadFile(P("sub/a")), "A");
  }
  EXPECT_FALSE(DevFuseTransport::IsMounted(dir_));
  EXPECT_EQ(fs_.destroy_calls(), 1);
}

TEST_F(DevFuseTransportTest, StopDetachesABusyMount) {
  ASSERT_TRUE(StartTransport().ok());
  int fd = ::open(P("hello").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0) << errno;
  // An open file keeps the mount busy; MNT_DETACH unmounts it anyway and
  // closing /dev/fuse ends the connection for the straggler.
  EXPECT_TRUE(transport_->Stop().ok());
  EXPECT_FALSE(DevFuseTransport::IsMounted(dir_));
  char c;
  EXPECT_EQ(::read(fd, &c, 1), -1);
  EXPECT_EQ(errno, ENOTCONN);
  ::close(fd);
}

TEST_F(DevFuseTransportTest, StartErrors) {
  DevFuseTransport transport;
  absl::Status missing = transport.Start(dir_ + "/no/such/dir", &server_, 1);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_EQ(transport.Start(dir_, &server_, 0).code(), absl::StatusCode::kInvalidArgument);
  DevFuseTransport::Options small;
  small.buffer_bytes = 4096;
  EXPECT_EQ(DevFuseTransport(small).Start(dir_, &server_, 1).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(transport.Start(dir_, &server_, 1).ok());
  EXPECT_EQ(transport.Start(dir_, &server_, 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(transport.Stop().ok());
  EXPECT_FALSE(DevFuseTransport::IsMounted(dir_));
}

}  // namespace
}  // namespace coherefs::agent::fuse
