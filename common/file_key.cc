#include "common/file_key.h"

#include <fcntl.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace coherefs {

std::string FileKeyOfHandle(const struct file_handle& fh) {
  std::string key;
  key.reserve(4 + fh.handle_bytes);
  const uint32_t type = static_cast<uint32_t>(fh.handle_type);
  for (int i = 0; i < 4; ++i) key.push_back(static_cast<char>((type >> (8 * i)) & 0xff));
  key.append(reinterpret_cast<const char*>(fh.f_handle), fh.handle_bytes);
  return key;
}

std::string FileKeyHex(const std::string& key) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * key.size());
  for (unsigned char c : key) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> FileKeyAt(int dirfd, const char* name, int flags) {
  union {
    struct file_handle fh;
    char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  } buf;
  buf.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(dirfd, name, &buf.fh, &mount_id, flags) != 0) {
    return LastErrnoStatus(absl::StrCat("name_to_handle_at ", name));
  }
  return FileKeyOfHandle(buf.fh);
}

}  // namespace coherefs
