// fusemount: mounts the FUSE server on a host directory through /dev/fuse
// until SIGINT or SIGTERM, then unmounts. For poking at the server by hand
// (ls, cat, xattr tools) and as the start of a host-mount tool.
//
//   fusemount --dir=/mnt/x [--threads=2] [--default_permissions]
//
// Today it serves FakeFileSystem with a small demo tree (hello, sub/a,
// link, an xattr): the passthrough file system (agent/passthrough) is the
// obvious next FileSystem to plug in here. Needs root and /dev/fuse.
#include <signal.h>

#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "agent/fuse/dev_fuse_transport.h"
#include "agent/fuse/fake_file_system.h"
#include "agent/fuse/server.h"
#include "common/log.h"

ABSL_FLAG(std::string, dir, "", "Directory to mount on (must exist).");
ABSL_FLAG(int, threads, 2, "Threads reading /dev/fuse.");
ABSL_FLAG(bool, default_permissions, false,
          "Let the kernel check permissions from the file modes.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  coherefs::SetLogComponent("fusemount");
  const std::string dir = absl::GetFlag(FLAGS_dir);
  if (dir.empty()) {
    LOG_ERROR("--dir is required");
    return 2;
  }
  using coherefs::agent::fuse::DevFuseTransport;
  using coherefs::agent::fuse::FakeFileSystem;
  using coherefs::agent::fuse::kRootInode;
  using coherefs::agent::fuse::Server;

  FakeFileSystem fs;
  auto hello = fs.AddFile(kRootInode, "hello", "hello world\n");
  auto sub = fs.AddDir(kRootInode, "sub");
  fs.AddFile(sub, "a", "A\n");
  fs.AddSymlink(kRootInode, "link", "hello");
  fs.AddXattr(hello, "user.color", "blue");
  Server server(&fs);

  // Block the signals before any thread starts so only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  DevFuseTransport::Options options;
  options.default_permissions = absl::GetFlag(FLAGS_default_permissions);
  DevFuseTransport transport(options);
  absl::Status status = transport.Start(dir, &server, absl::GetFlag(FLAGS_threads));
  if (!status.ok()) {
    LOG_ERROR("mount failed").Kv("dir", dir).Kv("error", status);
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  LOG_INFO("signal, unmounting").Kv("signal", sig);
  status = transport.Stop();
  if (!status.ok()) {
    LOG_ERROR("unmount failed").Kv("dir", dir).Kv("error", status);
    return 1;
  }
  return 0;
}
