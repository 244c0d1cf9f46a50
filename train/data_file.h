// Training-data files, read defensively (issue 18): with pread only, never mmap, so that a file
// that shrinks while a job reads it is an error naming the file instead of a SIGBUS; checked to
// be a regular file with stat() before it is opened, since opening a FIFO blocks and a device or
// directory is never data; and whole-file reads bounded in size before a byte is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longnet {

// The size of the regular file at `path` (links followed), checked before any open. Throws
// std::runtime_error "WHAT 'PATH' does not exist" / "... is a FIFO (named pipe), not a regular
// file" (likewise a directory, a device, a socket), adding `hint` (e.g. how to make the file).
uint64_t data_file_check(const std::string& path, const std::string& what,
                         const std::string& hint = "");

// A regular file opened read-only for pread. `what` names it in messages ("shard", "token
// file"). The size is taken when opening; reads past what the file holds now are errors.
class DataFile {
 public:
  DataFile(const std::string& path, const std::string& what);
  ~DataFile();
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& what() const { return what_; }
  uint64_t size() const { return size_; }  // at open

  // Reads exactly `size` bytes at `offset` into buf. Throws std::runtime_error naming the file,
  // the range and the file's size now when it holds fewer bytes (it shrank while in use), or
  // on an I/O error.
  void read_exact(uint64_t offset, void* buf, size_t size) const;

 private:
  std::string path_, what_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// The CRC-32 (train/crc32.h) of bytes [offset, offset + size) of f, read in 8 MiB blocks.
uint32_t data_file_crc32(const DataFile& f, uint64_t offset, uint64_t size);

// The whole of a small regular file (a manifest, a header), refused when larger than
// max_bytes, before reading it.
std::string data_file_read_small(const std::string& path, const std::string& what,
                                 uint64_t max_bytes);

}  // namespace longnet
