#include "agent/sandbox/capabilities.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace coherefs::agent::sandbox {
namespace {

struct Cap {
  int number;
  const char* name;
};

constexpr Cap kKept[] = {
    {CAP_CHOWN, "CAP_CHOWN"},       {CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"},
    {CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"},
    {CAP_FOWNER, "CAP_FOWNER"},     {CAP_FSETID, "CAP_FSETID"},
    {CAP_SETGID, "CAP_SETGID"},     {CAP_SETUID, "CAP_SETUID"},
    {CAP_MKNOD, "CAP_MKNOD"},       {CAP_SETFCAP, "CAP_SETFCAP"},
};

// Highest capability number this code may meet. The kernel's own
// (/proc/sys/kernel/cap_last_cap) may be lower: PR_CAPBSET_DROP of an
// unknown number is EINVAL and is skipped.
constexpr int kMaxCap = 63;

}  // namespace

uint64_t KeptCapabilityMask() {
  uint64_t mask = 0;
  for (const Cap& c : kKept) mask |= uint64_t{1} << c.number;
  return mask;
}

std::string KeptCapabilityNames() {
  std::string out;
  for (const Cap& c : kKept) absl::StrAppend(&out, out.empty() ? "" : ",", c.name);
  return out;
}

int DropCapabilitiesInThisThread() {
  const uint64_t kept = KeptCapabilityMask();
  // Bounding set first: dropping from it needs CAP_SETPCAP, which the
  // capset below removes.
  for (int cap = 0; cap <= kMaxCap; ++cap) {
    if (kept & (uint64_t{1} << cap)) continue;
    // Already out (e.g. systemd's CapabilityBoundingSet=); -1 EINVAL: a
    // number this kernel does not know.
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return -errno;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return -errno;
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = static_cast<uint32_t>(kept);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(kept >> 32);
  if (syscall(SYS_capset, &header, data) != 0) return -errno;
  return 0;
}

}  // namespace coherefs::agent::sandbox
