// A hostile guest against the shared-directory boundary, in raw FUSE
// requests: the guest controls every byte of what it sends, so requests
// the Linux client would never build (names with '/' or "..", node ids and
// file handles it was never given, ops on symlink nodes, races) go straight
// into fuse::Server over the real PassthroughFs, as root (as the agent
// runs), with the guest also claiming uid 0.
//
// Tree: root/share (served) and root/outside (secret, dir/, must stay
// unreachable). An escape is any of: a reply carrying an inode of outside/
// (other than the one the host itself hard-linked into the share), a
// listing or read showing outside's content, or any change to outside/
// (names, modes, owners, sizes, contents, xattrs) or next to share/.
// Every attempt is counted; the total is printed at the end
// ("escape attempts tried: N").
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/fuse/server.h"
#include "agent/passthrough/passthrough_fs.h"
#include "agent/passthrough/test_util.h"
#include "common/iov.h"
#include "gtest/gtest.h"

namespace coherefs::agent::passthrough {
namespace {

using testing::HostExists;
using testing::HostLstat;
using testing::TempTree;
using testing::WriteHostFile;

std::atomic<int> g_attempts{0};

template <typename T>
std::string Bytes(const T& obj) {
  return std::string(reinterpret_cast<const char*>(&obj), sizeof(obj));
}

struct Reply {
  int error = 0;      // negative errno as on the wire, 0 on success
  std::string body;   // after fuse_out_header
  template <typename T>
  T As() const {
    T out{};
    memcpy(&out, body.data(), std::min(sizeof(T), body.size()));
    return out;
  }
};

// One guest session: raw requests in, decoded header out.
class Guest {
 public:
  explicit Guest(PassthroughFs* fs) : server_(fs) {
    fuse_init_in in{};
    in.major = 7;
    in.minor = 38;
    in.max_readahead = 1 << 17;
    in.flags = FUSE_DO_READDIRPLUS | FUSE_BIG_WRITES | FUSE_MAX_PAGES;
    Reply r = Send(FUSE_INIT, 0, Bytes(in));
    EXPECT_EQ(r.error, 0);
  }

  Reply Send(uint32_t opcode, uint64_t nodeid, const std::string& args) {
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(sizeof(h) + args.size());
    h.opcode = opcode;
    h.unique = ++unique_;
    h.nodeid = nodeid;
    h.uid = 0;
    h.gid = 0;
    h.pid = 4242;
    std::string req = Bytes(h) + args;
    std::string out(1 << 18, '\0');
    iovec in_iov{req.data(), req.size()};
    iovec out_iov{out.data(), out.size()};
    IovReader reader({in_iov});
    IovWriter writer({out_iov});
    const size_t n = server_.HandleRequest(reader, writer);
    Reply r;
    if (n >= sizeof(fuse_out_header)) {
      fuse_out_header oh;
      memcpy(&oh, out.data(), sizeof(oh));
      r.error = oh.error;
      r.body = out.substr(sizeof(oh), n - sizeof(oh));
    } else {
      r.error = 1;  // no reply at all: only FORGET may do that
    }
    return r;
  }

  static std::string Name(const std::string& name) { return name + std::string(1, '\0'); }

  Reply Lookup(uint64_t parent, const std::string& name) {
    return Send(FUSE_LOOKUP, parent, Name(name));
  }
  uint64_t NodeOf(uint64_t parent, const std::string& name) {
    Reply r = Lookup(parent, name);
    return r.error == 0 ? r.As<fuse_entry_out>().nodeid : 0;
  }
  Reply Open(uint64_t node, uint32_t flags, uint32_t opcode = FUSE_OPEN) {
    fuse_open_in in{};
    in.flags = flags;
    return Send(opcode, node, Bytes(in));
  }
  Reply Read(uint64_t node, uint64_t fh, uint32_t opcode = FUSE_READ) {
    fuse_read_in in{};
    in.fh = fh;
    in.size = 4096;
    return Send(opcode, node, Bytes(in));
  }
  Reply Mkdir(uint64_t parent, const std::string& name) {
    fuse_mkdir_in in{};
    in.mode = 0755;
    return Send(FUSE_MKDIR, parent, Bytes(in) + Name(name));
  }
  Reply Mknod(uint64_t parent, const std::string& name) {
    fuse_mknod_in in{};
    in.mode = S_IFREG | 0644;
    return Send(FUSE_MKNOD, parent, Bytes(in) + Name(name));
  }
  Reply Create(uint64_t parent, const std::string& name) {
    fuse_create_in in{};
    in.flags = O_CREAT | O_RDWR;
    in.mode = S_IFREG | 0644;
    return Send(FUSE_CREATE, parent, Bytes(in) + Name(name));
  }
  Reply Symlink(uint64_t parent, const std::string& name, const std::string& target) {
    return Send(FUSE_SYMLINK, parent, Name(name) + Name(target));
  }
  Reply Unlink(uint64_t parent, const std::string& name) {
    return Send(FUSE_UNLINK, parent, Name(name));
  }
  Reply Rmdir(uint64_t parent, const std::string& name) {
    return Send(FUSE_RMDIR, parent, Name(name));
  }
  Reply Rename(uint64_t parent, const std::string& from, uint64_t newdir, const std::string& to,
               uint32_t flags = 0) {
    if (flags == 0) {
      fuse_rename_in in{};
      in.newdir = newdir;
      return Send(FUSE_RENAME, parent, Bytes(in) + Name(from) + Name(to));
    }
    fuse_rename2_in in{};
    in.newdir = newdir;
    in.flags = flags;
    return Send(FUSE_RENAME2, parent, Bytes(in) + Name(from) + Name(to));
  }
  Reply Link(uint64_t old_node, uint64_t newparent, const std::string& name) {
    fuse_link_in in{};
    in.oldnodeid = old_node;
    return Send(FUSE_LINK, newparent, Bytes(in) + Name(name));
  }
  Reply SetAttr(uint64_t node, uint32_t valid, uint32_t mode, uint64_t size, uint32_t uid) {
    fuse_setattr_in in{};
    in.valid = valid;
    in.mode = mode;
    in.size = size;
    in.uid = uid;
    in.gid = uid;
    in.atime = in.mtime = 1;
    return Send(FUSE_SETATTR, node, Bytes(in));
  }
  Reply SetXattr(uint64_t node, const std::string& name, const std::string& value) {
    // The 8-byte form: FUSE_SETXATTR_EXT was not negotiated.
    struct {
      uint32_t size;
      uint32_t flags;
    } in{static_cast<uint32_t>(value.size()), 0};
    return Send(FUSE_SETXATTR, node, Bytes(in) + Name(name) + value);
  }
  Reply Forget(uint64_t node) {
    fuse_forget_in in{};
    in.nlookup = 1;
    return Send(FUSE_FORGET, node, Bytes(in));
  }

 private:
  fuse::Server server_;
  std::atomic<uint64_t> unique_{0};
};

// What outside/ and root/ look like to the host: any difference is an
// escape (the test's own hard link aside, whose link count may change).
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  std::vector<std::string> todo = {""};
  while (!todo.empty()) {
    const std::string rel = todo.back();
    todo.pop_back();
    const std::string dir = root + rel;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string path = rel + "/" + name;
      if (rel.empty() && name == "share") {
        out[path] = "share";  // the share itself changes on purpose
        continue;
      }
      struct stat st;
      if (lstat((root + path).c_str(), &st) != 0) continue;
      std::string desc = absl::StrCat(st.st_mode, ":", st.st_uid, ":", st.st_gid, ":",
                                      st.st_size, ":", st.st_mtim.tv_sec);
      if (S_ISREG(st.st_mode)) absl::StrAppend(&desc, ":", testing::ReadHostFile(root + path));
      char names[1024];
      const ssize_t n = llistxattr((root + path).c_str(), names, sizeof(names));
      if (n > 0) absl::StrAppend(&desc, ":x=", std::string(names, n));
      out[path] = desc;
      if (S_ISDIR(st.st_mode)) todo.push_back(path);
    }
    closedir(d);
  }
  return out;
}

class EscapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "runs as root, as the agent does";
    ASSERT_EQ(mkdir((tree_.outside() + "/dir").c_str(), 0755), 0);
    WriteHostFile(tree_.outside() + "/dir/deep", "deep");
    WriteHostFile(tree_.In("in"), "inside");
    ASSERT_EQ(mkdir(tree_.In("d").c_str(), 0755), 0);
    // Host-made symlinks pointing out: absolute, relative, through /proc.
    ASSERT_EQ(symlink((tree_.outside() + "/secret").c_str(), tree_.In("abs").c_str()), 0);
    ASSERT_EQ(symlink(tree_.outside().c_str(), tree_.In("absdir").c_str()), 0);
    ASSERT_EQ(symlink("../outside/secret", tree_.In("rel").c_str()), 0);
    ASSERT_EQ(symlink("../outside", tree_.In("reldir").c_str()), 0);
    ASSERT_EQ(symlink("d/../../outside", tree_.In("d/up").c_str()), 0);
    ASSERT_EQ(symlink("/proc/self/root", tree_.In("proot").c_str()), 0);
    ASSERT_EQ(symlink("/proc/self/cwd", tree_.In("pcwd").c_str()), 0);
    for (int fd = 0; fd < 16; ++fd) {
      ASSERT_EQ(symlink(absl::StrCat("/proc/self/fd/", fd).c_str(),
                        tree_.In(absl::StrCat("pfd", fd)).c_str()),
                0);
    }
    struct stat st;
    for (const char* p : {"/secret", "/dir", "/dir/deep", ""}) {
      ASSERT_EQ(lstat((tree_.outside() + p).c_str(), &st), 0);
      outside_inos_.insert(st.st_ino);
    }
    ASSERT_EQ(lstat(tree_.root().c_str(), &st), 0);
    outside_inos_.insert(st.st_ino);
    ASSERT_EQ(stat("/", &st), 0);
    outside_inos_.insert(st.st_ino);
    fs_ = testing::MakeFs(tree_.share());
    ASSERT_NE(fs_, nullptr);
    guest_ = std::make_unique<Guest>(fs_.get());
    before_ = Snapshot(tree_.root());
  }

  void TearDown() override {
    EXPECT_EQ(Snapshot(tree_.root()), before_) << "outside/ changed: an escape";
    EXPECT_EQ(testing::ReadHostFile(tree_.outside() + "/secret"), "secret");
  }

  // One attempt: it must fail (when `must_fail`) and, whatever it returned,
  // must not carry an outside inode.
  // A READLINK reply is the link's text (which may name outside paths):
  // `data` false skips the content check for it.
  void Attempt(const std::string& what, const Reply& r, bool must_fail = true, bool data = true) {
    ++g_attempts;
    if (must_fail) {
      EXPECT_NE(r.error, 0) << what << " succeeded";
    }
    if (r.error == 0 && r.body.size() >= sizeof(fuse_entry_out)) {
      const auto e = r.As<fuse_entry_out>();
      EXPECT_EQ(outside_inos_.count(e.attr.ino), 0u) << what << " exposed an outside inode";
    }
    if (data) {
      EXPECT_EQ(r.body.find("secret"), std::string::npos) << what << " leaked data";
    }
  }

  TempTree tree_;
  std::unique_ptr<PassthroughFs> fs_;
  std::unique_ptr<Guest> guest_;
  std::set<uint64_t> outside_inos_;
  std::map<std::string, std::string> before_;
};

constexpr uint64_t kRoot = FUSE_ROOT_ID;

const std::vector<std::string>& BadNames() {
  static const std::vector<std::string> names = {
      "..", ".", "/", "a/b", "../outside/secret", "/etc/passwd", "../../..", "d/..",
      "../outside", std::string("..\0x", 4), "d/../../outside/secret"};
  return names;
}

TEST_F(EscapeTest, DotDotAndSlashInEveryNameTakingOp) {
  Guest& g = *guest_;
  const uint64_t d = g.NodeOf(kRoot, "d");
  const uint64_t in = g.NodeOf(kRoot, "in");
  ASSERT_NE(d, 0u);
  ASSERT_NE(in, 0u);
  for (uint64_t parent : {kRoot, d}) {
    for (const std::string& name : BadNames()) {
      const std::string what = absl::StrCat("parent ", parent, " name '", name, "'");
      // LOOKUP ".." is legal FUSE (exports): it may answer, but only with an
      // inode of the share (the share's root for the root's "..").
      Reply lookup = g.Lookup(parent, name);
      // "." and ".." (also "..\0x": the name ends at the NUL) may answer.
      const bool dots = name == "." || name == ".." || name == std::string("..\0x", 4);
      Attempt("LOOKUP " + what, lookup, /*must_fail=*/!dots);
      Attempt("MKDIR " + what, g.Mkdir(parent, name));
      Attempt("MKNOD " + what, g.Mknod(parent, name));
      Attempt("CREATE " + what, g.Create(parent, name));
      Attempt("SYMLINK " + what, g.Symlink(parent, name, "/etc/passwd"));
      Attempt("UNLINK " + what, g.Unlink(parent, name));
      Attempt("RMDIR " + what, g.Rmdir(parent, name));
      Attempt("RENAME from " + what, g.Rename(parent, name, kRoot, "stolen"));
      Attempt("RENAME to " + what, g.Rename(kRoot, "in", parent, name));
      Attempt("RENAME2 exchange " + what, g.Rename(kRoot, "in", parent, name, RENAME_EXCHANGE));
      Attempt("RENAME2 noreplace " + what,
              g.Rename(parent, name, kRoot, "stolen", RENAME_NOREPLACE));
      Attempt("LINK to " + what, g.Link(in, parent, name));
    }
  }
  // The root's ".." is the root itself.
  Reply up = g.Lookup(kRoot, "..");
  if (up.error == 0) {
    struct stat share;
    ASSERT_EQ(stat(tree_.share().c_str(), &share), 0);
    EXPECT_EQ(up.As<fuse_entry_out>().attr.ino, share.st_ino);
  }
  EXPECT_TRUE(HostExists(tree_.In("in")));
}

TEST_F(EscapeTest, SymlinksPointingOutAreNeverFollowed) {
  Guest& g = *guest_;
  for (std::string name : {"abs", "absdir", "rel", "reldir", "proot", "pcwd"}) {
    const uint64_t link = g.NodeOf(kRoot, name);
    ASSERT_NE(link, 0u) << name;
    Reply attr = g.Send(FUSE_GETATTR, link, Bytes(fuse_getattr_in{}));
    Attempt("GETATTR " + name, attr, false);
    EXPECT_TRUE(S_ISLNK(attr.As<fuse_attr_out>().attr.mode)) << name;
    Reply target = g.Send(FUSE_READLINK, link, "");
    Attempt("READLINK " + name, target, false, false);  // the text, never the object
    Attempt("LOOKUP through " + name, g.Lookup(link, "secret"));
    Attempt("LOOKUP deep through " + name, g.Lookup(link, "dir"));
    Attempt("MKDIR through " + name, g.Mkdir(link, "made"));
    Attempt("CREATE through " + name, g.Create(link, "made"));
    Attempt("MKNOD through " + name, g.Mknod(link, "made"));
    Attempt("SYMLINK through " + name, g.Symlink(link, "made", "x"));
    Attempt("UNLINK through " + name, g.Unlink(link, "secret"));
    Attempt("RMDIR through " + name, g.Rmdir(link, "dir"));
    Attempt("RENAME out of " + name, g.Rename(link, "secret", kRoot, "stolen"));
    Attempt("RENAME into " + name, g.Rename(kRoot, "in", link, "planted"));
    Attempt("LINK into " + name, g.Link(g.NodeOf(kRoot, "in"), link, "planted"));
    Attempt("OPEN " + name, g.Open(link, O_RDWR));
    Attempt("OPEN O_RDONLY " + name, g.Open(link, O_RDONLY));
    Attempt("OPENDIR " + name, g.Open(link, O_RDONLY, FUSE_OPENDIR));
    // Changes aimed at the symlink node must not reach its target.
    Attempt("SETATTR mode " + name, g.SetAttr(link, FATTR_MODE, 0777, 0, 0), false);
    Attempt("SETATTR size " + name, g.SetAttr(link, FATTR_SIZE, 0, 0, 0), false);
    Attempt("SETATTR owner " + name, g.SetAttr(link, FATTR_UID | FATTR_GID, 0, 0, 1234), false);
    Attempt("SETATTR times " + name, g.SetAttr(link, FATTR_ATIME | FATTR_MTIME, 0, 0, 0), false);
    Attempt("SETXATTR user " + name, g.SetXattr(link, "user.escape", "1"), false);
    Attempt("SETXATTR trusted " + name, g.SetXattr(link, "trusted.escape", "1"), false);
  }
  // Symlinks the guest makes itself, aimed the same ways.
  for (const std::string& target : {std::string("/"), tree_.outside(), std::string("../outside"),
                                   std::string("/proc/self/fd/3")}) {
    ASSERT_EQ(g.Symlink(kRoot, "mine", target).error, 0);
    const uint64_t mine = g.NodeOf(kRoot, "mine");
    Attempt("LOOKUP through guest symlink to " + target, g.Lookup(mine, "secret"));
    Attempt("CREATE through guest symlink to " + target, g.Create(mine, "made"));
    Attempt("OPEN guest symlink to " + target, g.Open(mine, O_RDONLY));
    Attempt("SETATTR guest symlink to " + target, g.SetAttr(mine, FATTR_MODE, 0777, 0, 0), false);
    ASSERT_EQ(g.Unlink(kRoot, "mine").error, 0);
  }
}

TEST_F(EscapeTest, ProcSelfFdTricks) {
  Guest& g = *guest_;
  for (int fd = 0; fd < 16; ++fd) {
    const std::string name = absl::StrCat("pfd", fd);
    const uint64_t link = g.NodeOf(kRoot, name);
    ASSERT_NE(link, 0u);
    Attempt("OPEN " + name, g.Open(link, O_RDWR));
    Attempt("OPENDIR " + name, g.Open(link, O_RDONLY, FUSE_OPENDIR));
    Attempt("LOOKUP through " + name, g.Lookup(link, "secret"));
    Attempt("CREATE through " + name, g.Create(link, "made"));
    Attempt("SETATTR size " + name, g.SetAttr(link, FATTR_SIZE, 0, 0, 0), false);
    Attempt("SETATTR mode " + name, g.SetAttr(link, FATTR_MODE, 0777, 0, 0), false);
    Attempt("SETXATTR " + name, g.SetXattr(link, "trusted.escape", "1"), false);
  }
  // Names the passthrough uses internally mean nothing to the guest.
  Attempt("LOOKUP proc", g.Lookup(kRoot, "proc"));
  Attempt("LOOKUP self", g.Lookup(kRoot, "self"));
}

TEST_F(EscapeTest, SymlinkSwappedInForADirectoryRacingLookups) {
  ASSERT_EQ(mkdir(tree_.In("race").c_str(), 0755), 0);
  WriteHostFile(tree_.In("race/inner"), "inner");
  ASSERT_EQ(symlink(tree_.outside().c_str(), tree_.In("race_link").c_str()), 0);
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    // Bounded: the guests stop it after their loops.
    for (int i = 0; i < 2000000 && !stop.load(); ++i) {
      if (renameat2(AT_FDCWD, tree_.In("race").c_str(), AT_FDCWD, tree_.In("race_link").c_str(),
                    RENAME_EXCHANGE) == 0) {
        ++swaps;
      }
    }
  });
  std::atomic<int> leaks{0};
  std::atomic<int> tries{0};
  auto attacker = [&](int id) {
    Guest g(fs_.get());
    for (int i = 0; i < 1500; ++i) {
      Reply r = g.Lookup(kRoot, "race");
      if (r.error != 0) continue;
      const auto e = r.As<fuse_entry_out>();
      if (outside_inos_.count(e.attr.ino)) ++leaks;
      Reply s = g.Lookup(e.nodeid, "secret");
      if (s.error == 0) ++leaks;
      Reply c = g.Create(e.nodeid, absl::StrCat("planted", id));
      if (c.error == 0 && outside_inos_.count(c.As<fuse_entry_out>().attr.ino)) ++leaks;
      Reply m = g.Mkdir(e.nodeid, absl::StrCat("pdir", id));
      Reply o = g.Open(e.nodeid, O_RDONLY, FUSE_OPENDIR);
      if (o.error == 0) {
        const uint64_t fh = o.As<fuse_open_out>().fh;
        Reply list = g.Read(e.nodeid, fh, FUSE_READDIR);
        if (list.body.find("secret") != std::string::npos) ++leaks;
        fuse_release_in rel{};
        rel.fh = fh;
        g.Send(FUSE_RELEASEDIR, e.nodeid, Bytes(rel));
      }
      g.Forget(e.nodeid);
      tries += 5;
    }
  };
  std::thread a(attacker, 1), b(attacker, 2);
  a.join();
  b.join();
  stop = true;
  swapper.join();
  g_attempts += tries.load();
  printf("symlink-swap race: %d guest operations against %d swaps\n", tries.load(),
         swaps.load());
  EXPECT_GT(swaps.load(), 100);
  EXPECT_EQ(leaks.load(), 0);
  EXPECT_FALSE(HostExists(tree_.outside() + "/planted1"));
  EXPECT_FALSE(HostExists(tree_.outside() + "/planted2"));
  EXPECT_FALSE(HostExists(tree_.outside() + "/pdir1"));
}

TEST_F(EscapeTest, ForgedNodeIdsAndFileHandles) {
  Guest& g = *guest_;
  const uint64_t in = g.NodeOf(kRoot, "in");
  ASSERT_NE(in, 0u);
  // A node the guest looked up and then forgot, and node ids it never got:
  // small ones, huge ones, and the host inode numbers of outside objects
  // (what a guest would guess if node ids were inode numbers).
  const uint64_t gone = g.NodeOf(kRoot, "d");
  g.Forget(gone);
  std::vector<uint64_t> forged = {0, 2, 3, 7, 100, 4096, 0xdeadbeef, 1ull << 40, ~0ull,
                                  ~0ull - 1, gone + 1000, in + 1, in + 2};
  for (uint64_t ino : outside_inos_) forged.push_back(ino);
  for (uint64_t n : forged) {
    if (n == in || n == kRoot) continue;
    const std::string what = absl::StrCat(" forged node ", n);
    Attempt("GETATTR" + what, g.Send(FUSE_GETATTR, n, Bytes(fuse_getattr_in{})));
    Attempt("LOOKUP in" + what, g.Lookup(n, "secret"));
    Attempt("OPEN" + what, g.Open(n, O_RDWR));
    Attempt("OPENDIR" + what, g.Open(n, O_RDONLY, FUSE_OPENDIR));
    Attempt("READLINK" + what, g.Send(FUSE_READLINK, n, ""));
    Attempt("SETATTR" + what, g.SetAttr(n, FATTR_MODE, 0777, 0, 0));
    Attempt("MKDIR in" + what, g.Mkdir(n, "made"));
    Attempt("CREATE in" + what, g.Create(n, "made"));
    Attempt("UNLINK in" + what, g.Unlink(n, "secret"));
    Attempt("LINK from" + what, g.Link(n, kRoot, "linked"));
    Attempt("RENAME into" + what, g.Rename(kRoot, "in", n, "moved"));
    Attempt("SETXATTR" + what, g.SetXattr(n, "user.x", "1"));
    Attempt("STATFS" + what, g.Send(FUSE_STATFS, n, ""));
  }
  EXPECT_FALSE(HostExists(tree_.In("linked")));
  // File handles never issued, including plain descriptor numbers of this
  // process (a server that used fds as handles would serve them).
  Reply opened = g.Open(in, O_RDONLY);
  ASSERT_EQ(opened.error, 0);
  const uint64_t real_fh = opened.As<fuse_open_out>().fh;
  for (uint64_t fh = 0; fh < 64; ++fh) {
    if (fh == real_fh) continue;
    const std::string what = absl::StrCat(" forged fh ", fh);
    Attempt("READ" + what, g.Read(in, fh));
    Attempt("READDIR" + what, g.Read(kRoot, fh, FUSE_READDIR));
    fuse_write_in w{};
    w.fh = fh;
    w.size = 4;
    Attempt("WRITE" + what, g.Send(FUSE_WRITE, in, Bytes(w) + "evil"));
    fuse_fsync_in f{};
    f.fh = fh;
    Attempt("FSYNC" + what, g.Send(FUSE_FSYNC, in, Bytes(f)));
  }
  for (uint64_t fh : std::vector<uint64_t>{0xdeadbeef, ~uint64_t{0}, real_fh + 1, real_fh ^ 1}) {
    Attempt(absl::StrCat("READ forged fh ", fh), g.Read(in, fh));
  }
  EXPECT_EQ(testing::ReadHostFile(tree_.In("in")), "inside");
}

TEST_F(EscapeTest, HardLinksToOutsideFiles) {
  Guest& g = *guest_;
  // LINK of an inode from outside: the guest can only name node ids, and
  // outside inodes have none (forged ids above). A host-side hard link
  // planted inside is a file the host put into the share: the guest gets
  // that inode and nothing else (no parent, no path back).
  ASSERT_EQ(link((tree_.outside() + "/secret").c_str(), tree_.In("hardlink").c_str()), 0);
  const uint64_t hl = g.NodeOf(kRoot, "hardlink");
  ASSERT_NE(hl, 0u);
  // That inode is now legitimately in the share (the host put it there).
  outside_inos_.erase(HostLstat(tree_.In("hardlink")).st_ino);
  Attempt("LOOKUP .. of the hard link", g.Lookup(hl, ".."));
  Attempt("LOOKUP secret under the hard link", g.Lookup(hl, "secret"));
  Attempt("MKDIR under the hard link", g.Mkdir(hl, "made"));
  Reply copy = g.Link(hl, kRoot, "copy");
  Attempt("LINK of the planted link stays inside", copy, false);
  EXPECT_TRUE(HostExists(tree_.In("copy")));
  Attempt("RENAME of the planted link stays inside", g.Rename(kRoot, "hardlink", kRoot, "moved"),
          false);
  EXPECT_TRUE(HostExists(tree_.In("moved")));
  Attempt("UNLINK of the planted link", g.Unlink(kRoot, "moved"), false);
  Attempt("UNLINK of the copy", g.Unlink(kRoot, "copy"), false);
  // A hard link to a directory is refused by the kernel anyway.
  const uint64_t d = g.NodeOf(kRoot, "d");
  Attempt("LINK of a directory", g.Link(d, kRoot, "dlink"));
  // Outside, the file and its name are unchanged.
  EXPECT_TRUE(HostExists(tree_.outside() + "/secret"));
  EXPECT_EQ(testing::ReadHostFile(tree_.outside() + "/secret"), "secret");
}

TEST_F(EscapeTest, RenameAcrossTheBoundary) {
  Guest& g = *guest_;
  const uint64_t reldir = g.NodeOf(kRoot, "reldir");
  const uint64_t absdir = g.NodeOf(kRoot, "absdir");
  const uint64_t d = g.NodeOf(kRoot, "d");
  const uint64_t up = g.NodeOf(d, "up");
  for (uint64_t out : {reldir, absdir, up}) {
    ASSERT_NE(out, 0u);
    for (uint32_t flags : {0u, static_cast<uint32_t>(RENAME_NOREPLACE),
                           static_cast<uint32_t>(RENAME_EXCHANGE)}) {
      const std::string what = absl::StrCat(" via node ", out, " flags ", flags);
      Attempt("RENAME in out" + what, g.Rename(kRoot, "in", out, "in", flags));
      Attempt("RENAME out in" + what, g.Rename(out, "secret", kRoot, "stolen", flags));
      Attempt("RENAME dir out" + what, g.Rename(kRoot, "d", out, "d", flags));
      Attempt("RENAME out dir in" + what, g.Rename(out, "dir", d, "stolen", flags));
    }
  }
  // Exchanging a file with a symlink that points out moves only the names.
  Attempt("RENAME2 exchange in <-> rel",
          g.Rename(kRoot, "in", kRoot, "rel", RENAME_EXCHANGE), false);
  char target[256] = {};
  ASSERT_GT(readlink(tree_.In("in").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_EQ(std::string(target), "../outside/secret");
  EXPECT_EQ(testing::ReadHostFile(tree_.In("rel")), "inside");
  // Renaming a directory under itself is refused.
  Attempt("RENAME d into d", g.Rename(kRoot, "d", d, "self"));
  EXPECT_FALSE(HostExists(tree_.In("stolen")));
  EXPECT_FALSE(HostExists(tree_.root() + "/in"));
  EXPECT_FALSE(HostExists(tree_.root() + "/d"));
}

class Reporter : public ::testing::Environment {
 public:
  void TearDown() override { printf("escape attempts tried: %d\n", g_attempts.load()); }
};
const auto* const kReporter = ::testing::AddGlobalTestEnvironment(new Reporter);

}  // namespace
}  // namespace coherefs::agent::passthrough
