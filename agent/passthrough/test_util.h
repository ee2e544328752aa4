// Helpers for the passthrough tests: a scratch tree on the real file system
// (share/ is served, outside/ must stay unreachable), errno assertions, and a
// DirSink that records what it takes. Test-only.
#ifndef COHEREFS_AGENT_PASSTHROUGH_TEST_UTIL_H_
#define COHEREFS_AGENT_PASSTHROUGH_TEST_UTIL_H_

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/fuse/file_system.h"
#include "agent/passthrough/passthrough_fs.h"
#include "common/errno_status.h"
#include "common/status_macros.h"

namespace coherefs::agent::passthrough::testing {

// mkdtemp'd directory with share/ and outside/ (outside/secret holds
// "secret"); removed recursively, mounts below it detached, on destruction.
class TempTree {
 public:
  TempTree();
  ~TempTree();
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::string& root() const { return root_; }
  std::string share() const { return root_ + "/share"; }
  std::string outside() const { return root_ + "/outside"; }
  // share()/rel
  std::string In(const std::string& rel) const { return share() + "/" + rel; }

 private:
  std::string root_;
};

// Host-side helpers (the test's view, not through the file system).
void WriteHostFile(const std::string& path, const std::string& data);
std::string ReadHostFile(const std::string& path);  // "" if missing
bool HostExists(const std::string& path);           // lstat succeeds
struct stat HostLstat(const std::string& path);

std::unique_ptr<PassthroughFs> MakeFs(const std::string& dir, Options options = {});

inline fuse::Context RootCtx() { return fuse::Context{}; }
inline fuse::Context UserCtx(uint32_t uid = 1000, uint32_t gid = 1000) {
  fuse::Context ctx;
  ctx.uid = uid;
  ctx.gid = gid;
  return ctx;
}

inline absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Records accepted entries; refuses when `refuse(call_number)` says so
// (call numbers start at 1 and count every Add, refused ones included).
class RecordingSink : public fuse::DirSink {
 public:
  struct Item {
    std::string name;
    uint64_t ino = 0;
    uint64_t offset = 0;
    uint32_t type = 0;
    bool has_plus = false;
    fuse::Entry plus;
  };
  explicit RecordingSink(std::function<bool(int)> refuse = nullptr)
      : refuse_(std::move(refuse)) {}

  bool Add(const fuse::DirEntry& entry, const fuse::Entry* plus) override;

  std::vector<Item> items;
  bool refused = false;  // the last ReadDir ended on a refusal
  int calls = 0;

 private:
  std::function<bool(int)> refuse_;
};

// Writes `data` through Create/Write/Release and returns the entry (one
// lookup held).
fuse::Entry CreateFile(PassthroughFs& fs, fuse::InodeId parent, const std::string& name,
                       const std::string& data, uint32_t mode = 0644);

}  // namespace coherefs::agent::passthrough::testing

#define EXPECT_ERRNO(expr, err)                                                     \
  do {                                                                              \
    ::absl::Status _st = ::coherefs::agent::passthrough::testing::ToStatus(expr);   \
    EXPECT_EQ(::coherefs::ErrnoFromStatus(_st), (err)) << #expr << " -> " << _st;   \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr)                         \
  auto COHEREFS_CONCAT_(_ok_or_, __LINE__) = (expr);            \
  ASSERT_TRUE(COHEREFS_CONCAT_(_ok_or_, __LINE__).ok())         \
      << #expr << " -> " << COHEREFS_CONCAT_(_ok_or_, __LINE__).status(); \
  lhs = std::move(COHEREFS_CONCAT_(_ok_or_, __LINE__)).value()

#define ASSERT_OK(expr)                                                            \
  do {                                                                             \
    ::absl::Status _st = ::coherefs::agent::passthrough::testing::ToStatus(expr);  \
    ASSERT_TRUE(_st.ok()) << #expr << " -> " << _st;                               \
  } while (0)

#endif  // COHEREFS_AGENT_PASSTHROUGH_TEST_UTIL_H_
