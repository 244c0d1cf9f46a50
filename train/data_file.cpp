// Defensive reads of data files (see data_file.h).
#include "longnet/train/data_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "longnet/train/crc32.h"

namespace longnet {
namespace {

const char* file_kind(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string who(const std::string& what, const std::string& path) {
  return what + " '" + path + "'";
}

}  // namespace

uint64_t data_file_check(const std::string& path, const std::string& what,
                         const std::string& hint) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      throw std::runtime_error(who(what, path) + " does not exist" + hint);
    throw std::runtime_error(who(what, path) + ": cannot stat: " + std::strerror(errno) + hint);
  }
  if (!S_ISREG(st.st_mode))
    throw std::runtime_error(who(what, path) + " is " + file_kind(st.st_mode) +
                             ", not a regular file" + hint);
  return static_cast<uint64_t>(st.st_size);
}

DataFile::DataFile(const std::string& path, const std::string& what) : path_(path), what_(what) {
  data_file_check(path, what);
  // O_NONBLOCK: should the path become a FIFO between the check and the open, open returns at
  // once (and fstat below refuses it) instead of waiting for a writer.
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw std::runtime_error(who(what, path) + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string kind = file_kind(st.st_mode);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(who(what, path) + " is " + kind + ", not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

DataFile::~DataFile() {
  if (fd_ >= 0) ::close(fd_);
}

void DataFile::read_exact(uint64_t offset, void* buf, size_t size) const {
  auto* out = static_cast<char*>(buf);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd_, out + done, size - done, static_cast<off_t>(offset + done));
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int err = errno;
    if (n < 0)
      throw std::runtime_error(who(what_, path_) + ": read of " + std::to_string(size) +
                               " bytes at offset " + std::to_string(offset) +
                               " failed: " + std::strerror(err));
    struct stat st;
    const std::string now =
        ::fstat(fd_, &st) == 0 ? std::to_string(st.st_size) + " bytes now" : "an unknown size";
    throw std::runtime_error(who(what_, path_) + " shrank while in use: bytes [" +
                             std::to_string(offset) + ", " + std::to_string(offset + size) +
                             ") are gone (it had " + std::to_string(size_) +
                             " bytes when opened, " + now +
                             "); restore the file (or rebuild the dataset) and resume from the "
                             "last checkpoint");
  }
}

uint32_t data_file_crc32(const DataFile& f, uint64_t offset, uint64_t size) {
  constexpr uint64_t kBlock = uint64_t{8} << 20;
  std::vector<unsigned char> block(static_cast<size_t>(std::min(kBlock, size)));
  uint32_t crc = 0;
  for (uint64_t done = 0; done < size;) {
    const size_t n = static_cast<size_t>(std::min(kBlock, size - done));
    f.read_exact(offset + done, block.data(), n);
    crc = crc32_update(crc, block.data(), n);
    done += n;
  }
  return crc;
}

std::string data_file_read_small(const std::string& path, const std::string& what,
                                 uint64_t max_bytes) {
  const uint64_t size = data_file_check(path, what);
  if (size > max_bytes)
    throw std::runtime_error(who(what, path) + " has " + std::to_string(size) +
                             " bytes, more than the " + std::to_string(max_bytes) +
                             " bytes such a file may have; is it the right file?");
  DataFile f(path, what);
  if (f.size() > max_bytes)
    throw std::runtime_error(who(what, path) + " grew to " + std::to_string(f.size()) +
                             " bytes while being opened, more than " + std::to_string(max_bytes));
  std::string data(static_cast<size_t>(f.size()), '\0');
  f.read_exact(0, data.data(), data.size());
  return data;
}

}  // namespace longnet
