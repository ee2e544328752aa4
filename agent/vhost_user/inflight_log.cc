#include "agent/vhost_user/inflight_log.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace coherefs::agent::vhost_user {

namespace {

constexpr uint64_t kMagic = 0x31464c4e49534643;  // "CFSINFL1"

template <typename T>
void Put(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
template <typename T>
T Get(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

}  // namespace

struct InflightLog::Header {
  uint64_t magic;
  uint32_t num;
  uint16_t used_idx;   // the used idx after the last completed return
  uint16_t last_head;  // head of the return in progress (BeginPut)
  uint16_t extra;      // see the header comment
  uint16_t pad[3];
  uint64_t counter;    // stamps handed out
  uint8_t reserved[32];
};


namespace {

size_t LogBytes(uint32_t num) { return 64 + 16ull * num; }
constexpr uint64_t kDone = 1ull << 63;

}  // namespace

absl::StatusOr<std::unique_ptr<InflightLog>> InflightLog::Create(uint32_t num) {
  static_assert(sizeof(Header) == 64, "the header is 64 bytes");
  UniqueFd fd(::memfd_create("coherefs-inflight", MFD_CLOEXEC));
  if (!fd.valid()) return LastErrnoStatus("memfd_create (in-flight log)");
  const size_t size = LogBytes(num);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return LastErrnoStatus("ftruncate (in-flight log)");
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) return LastErrnoStatus("mmap (in-flight log)");
  std::unique_ptr<InflightLog> log(new InflightLog(std::move(fd), base, size, num));
  log->header()->num = num;
  Put(&log->header()->magic, kMagic);
  return log;
}

absl::StatusOr<std::unique_ptr<InflightLog>> InflightLog::Attach(UniqueFd fd, uint32_t num) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return LastErrnoStatus("fstat (in-flight log)");
  const size_t size = LogBytes(num);
  if (static_cast<size_t>(st.st_size) != size) {
    return absl::DataLossError(absl::StrCat("in-flight log of ", st.st_size,
                                            " bytes for a ring of ", num));
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) return LastErrnoStatus("mmap (in-flight log)");
  std::unique_ptr<InflightLog> log(new InflightLog(std::move(fd), base, size, num));
  if (Get(&log->header()->magic) != kMagic || log->header()->num != num) {
    return absl::DataLossError("in-flight log header does not match the ring");
  }
  return log;
}

InflightLog::InflightLog(UniqueFd fd, void* base, size_t size, uint32_t num)
    : fd_(std::move(fd)), base_(base), size_(size), num_(num) {}

InflightLog::~InflightLog() { ::munmap(base_, size_); }

InflightLog::Header* InflightLog::header() const { return static_cast<Header*>(base_); }

uint64_t* InflightLog::stamps() const {
  return reinterpret_cast<uint64_t*>(static_cast<uint8_t*>(base_) + 64);
}

uint64_t* InflightLog::done() const { return stamps() + num_; }

void InflightLog::Start(uint16_t last_avail_idx, uint16_t used_idx) {
  for (uint32_t i = 0; i < num_; ++i) {
    Put(&stamps()[i], uint64_t{0});
    Put(&done()[i], uint64_t{0});
  }
  Header* h = header();
  Put(&h->used_idx, used_idx);
  Put(&h->extra, static_cast<uint16_t>(last_avail_idx - used_idx));
}

InflightLog::Recovered InflightLog::Recover(uint16_t used_idx) {
  Header* h = header();
  if (Get(&h->used_idx) != used_idx) {
    // Died between publishing a used element and EndPut: that chain is done.
    const uint16_t head = Get(&h->last_head);
    if (head < num_) Put(&stamps()[head], uint64_t{0});
    Put(&h->used_idx, used_idx);
  }
  std::vector<std::pair<uint64_t, uint16_t>> taken;
  for (uint32_t i = 0; i < num_; ++i) {
    const uint64_t stamp = Get(&stamps()[i]);
    if (stamp != 0) taken.emplace_back(stamp, static_cast<uint16_t>(i));
  }
  std::sort(taken.begin(), taken.end());
  Recovered r;
  for (const auto& [stamp, head] : taken) {
    const uint64_t d = Get(&done()[head]);
    if (d & kDone) {
      r.done.emplace_back(head, static_cast<uint32_t>(d));
    } else {
      r.in_flight.push_back(head);
    }
  }
  r.last_avail_idx = static_cast<uint16_t>(used_idx + taken.size() + Get(&h->extra));
  return r;
}

void InflightLog::MarkTaken(uint16_t head) {
  if (head >= num_) return;
  Header* h = header();
  const uint64_t stamp = h->counter + 1;
  Put(&h->counter, stamp);
  Put(&done()[head], uint64_t{0});
  Put(&stamps()[head], stamp);
}

void InflightLog::MarkDone(uint16_t head, uint32_t len) {
  if (head < num_) Put(&done()[head], kDone | len);
}

void InflightLog::MarkSkipped() {
  Header* h = header();
  Put(&h->extra, static_cast<uint16_t>(h->extra + 1));
}

void InflightLog::BeginPut(uint16_t head) { Put(&header()->last_head, head); }

void InflightLog::EndPut(uint16_t head, uint16_t new_used_idx) {
  if (head < num_) Put(&stamps()[head], uint64_t{0});
  Put(&header()->used_idx, new_used_idx);
}

}  // namespace coherefs::agent::vhost_user
