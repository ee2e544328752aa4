// IovReader and IovWriter are cursors over scatter-gather lists. They are the
// only thing a transport (a /dev/fuse buffer, a virtqueue descriptor chain
// mapped into host memory) hands to the FUSE server, so the server knows
// nothing of where the bytes live.
//
// Neither owns the memory its iovecs point to: the transport keeps it valid
// for the cursor's lifetime. Not thread-safe: one request, one thread.
#ifndef COHEREFS_COMMON_IOV_H_
#define COHEREFS_COMMON_IOV_H_

#include <sys/uio.h>

#include <cstddef>
#include <vector>

namespace coherefs {

class IovReader {
 public:
  IovReader() = default;
  explicit IovReader(std::vector<iovec> iov);

  // Bytes not yet consumed.
  size_t remaining() const { return remaining_; }
  // Bytes consumed so far.
  size_t consumed() const { return total_ - remaining_; }

  // Copies exactly `n` bytes to `dst` and consumes them. Returns false and
  // consumes nothing when fewer than `n` remain.
  bool Read(void* dst, size_t n);
  template <typename T>
  bool ReadObj(T* out) {
    return Read(out, sizeof(T));
  }
  // Consumes `n` bytes without copying; false (nothing consumed) if short.
  bool Skip(size_t n);
  // Consumes `n` bytes and appends them to `out` as iovecs pointing into the
  // underlying memory (for pwritev without a copy). False if short.
  bool Take(size_t n, std::vector<iovec>* out);

 private:
  // Consumes `n` bytes, calling fn(ptr, len) for each contiguous piece;
  // false (nothing consumed) if fewer than `n` remain.
  template <typename Fn>
  bool Consume(size_t n, Fn&& fn);

  std::vector<iovec> iov_;
  size_t index_ = 0;   // current iovec
  size_t offset_ = 0;  // offset within iov_[index_]
  size_t total_ = 0;
  size_t remaining_ = 0;
};

class IovWriter {
 public:
  IovWriter() = default;
  explicit IovWriter(std::vector<iovec> iov);

  // Bytes written so far (the cursor position).
  size_t written() const { return written_; }
  // Room left after the cursor.
  size_t room() const { return capacity_ - written_; }
  size_t capacity() const { return capacity_; }

  // Copies `n` bytes at the cursor and advances. False (nothing written)
  // when fewer than `n` bytes of room are left.
  bool Write(const void* src, size_t n);
  template <typename T>
  bool WriteObj(const T& obj) {
    return Write(&obj, sizeof(T));
  }
  // Overwrites bytes already written, at `offset` (< written()); the cursor
  // stays. For headers whose length is known only at the end.
  bool Overwrite(size_t offset, const void* src, size_t n);
  // Appends to `out` iovecs for the next `n` bytes of room without advancing
  // (for preadv into the destination). Commit what was filled with Advance.
  bool Reserve(size_t n, std::vector<iovec>* out) const;
  // Advances the cursor over `n` bytes filled through Reserve.
  bool Advance(size_t n);

 private:
  // Locates absolute offset `pos`: iovec index and offset inside it.
  void Locate(size_t pos, size_t* index, size_t* offset) const;

  std::vector<iovec> iov_;
  size_t capacity_ = 0;
  size_t written_ = 0;
};

}  // namespace coherefs

#endif  // COHEREFS_COMMON_IOV_H_
