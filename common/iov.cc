#include "common/iov.h"

#include <algorithm>
#include <cstring>

namespace coherefs {

IovReader::IovReader(std::vector<iovec> iov) : iov_(std::move(iov)) {
  for (const iovec& v : iov_) total_ += v.iov_len;
  remaining_ = total_;
}

template <typename Fn>
bool IovReader::Consume(size_t n, Fn&& fn) {
  if (n > remaining_) return false;
  while (n > 0) {
    const iovec& v = iov_[index_];
    size_t chunk = std::min(n, v.iov_len - offset_);
    if (chunk > 0) fn(static_cast<char*>(v.iov_base) + offset_, chunk);
    n -= chunk;
    remaining_ -= chunk;
    offset_ += chunk;
    if (offset_ == v.iov_len) {
      ++index_;
      offset_ = 0;
    }
  }
  return true;
}

bool IovReader::Read(void* dst, size_t n) {
  auto* out = static_cast<char*>(dst);
  return Consume(n, [&out](char* p, size_t len) {
    std::memcpy(out, p, len);
    out += len;
  });
}

bool IovReader::Skip(size_t n) {
  return Consume(n, [](char*, size_t) {});
}

bool IovReader::Take(size_t n, std::vector<iovec>* out) {
  return Consume(n, [out](char* p, size_t len) { out->push_back({p, len}); });
}

IovWriter::IovWriter(std::vector<iovec> iov) : iov_(std::move(iov)) {
  for (const iovec& v : iov_) capacity_ += v.iov_len;
}

void IovWriter::Locate(size_t pos, size_t* index, size_t* offset) const {
  size_t i = 0;
  while (i < iov_.size() && pos >= iov_[i].iov_len) {
    pos -= iov_[i].iov_len;
    ++i;
  }
  *index = i;
  *offset = pos;
}

bool IovWriter::Write(const void* src, size_t n) {
  if (n > room()) return false;
  size_t index, offset;
  Locate(written_, &index, &offset);
  const auto* in = static_cast<const char*>(src);
  size_t left = n;
  while (left > 0) {
    const iovec& v = iov_[index];
    size_t chunk = std::min(left, v.iov_len - offset);
    std::memcpy(static_cast<char*>(v.iov_base) + offset, in, chunk);
    in += chunk;
    left -= chunk;
    ++index;
    offset = 0;
  }
  written_ += n;
  return true;
}

bool IovWriter::Overwrite(size_t pos, const void* src, size_t n) {
  if (pos > written_ || n > written_ - pos) return false;
  size_t index, offset;
  Locate(pos, &index, &offset);
  const auto* in = static_cast<const char*>(src);
  while (n > 0) {
    const iovec& v = iov_[index];
    size_t chunk = std::min(n, v.iov_len - offset);
    std::memcpy(static_cast<char*>(v.iov_base) + offset, in, chunk);
    in += chunk;
    n -= chunk;
    ++index;
    offset = 0;
  }
  return true;
}

bool IovWriter::Reserve(size_t n, std::vector<iovec>* out) const {
  if (n > room()) return false;
  size_t index, offset;
  Locate(written_, &index, &offset);
  while (n > 0) {
    const iovec& v = iov_[index];
    size_t chunk = std::min(n, v.iov_len - offset);
    if (chunk > 0) out->push_back({static_cast<char*>(v.iov_base) + offset, chunk});
    n -= chunk;
    ++index;
    offset = 0;
  }
  return true;
}

bool IovWriter::Advance(size_t n) {
  if (n > room()) return false;
  written_ += n;
  return true;
}

}  // namespace coherefs
