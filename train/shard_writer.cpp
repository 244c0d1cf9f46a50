// Shard files: writing through a temporary name, and verifying (see shard_writer.h).
#include "longnet/train/shard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "longnet/core/file_util.h"
#include "longnet/train/crc32.h"
#include "longnet/train/data_file.h"
#include "longnet/train/shard_header.h"

namespace longnet {
namespace {

constexpr size_t kBuffer = size_t{4} << 20;

void write_all(int fd, const unsigned char* p, size_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw std::runtime_error("data build: writing '" + path + "' failed: " +
                               (w < 0 ? std::strerror(errno) : "no progress") + " (disk full?)");
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

}  // namespace

std::string shard_file_name(bool validation, int64_t index) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s_%06lld.bin", validation ? "val" : "train",
                static_cast<long long>(index));
  return buf;
}

ShardWriter::ShardWriter(const std::string& dir, bool validation, int64_t index,
                         int64_t token_bytes, int64_t vocab_size)
    : dir_(dir),
      name_(shard_file_name(validation, index)),
      tmp_(dir + "/" + name_ + ".tmp"),
      on_signal_(tmp_),
      validation_(validation),
      index_(index),
      token_bytes_(token_bytes),
      vocab_size_(vocab_size) {
  fd_ = open_fresh(tmp_);
  if (fd_ < 0)
    throw std::runtime_error("data build: cannot create '" + tmp_ + "': " + std::strerror(errno));
  buf_.reserve(kBuffer);
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void ShardWriter::flush() {
  if (buf_.empty()) return;
  crc_ = crc32_update(crc_, buf_.data(), buf_.size());
  const uint64_t at =
      kShardHeaderBytes + static_cast<uint64_t>(tokens_) * token_bytes_ - buf_.size();
  write_all(fd_, buf_.data(), buf_.size(), at, tmp_);
  buf_.clear();
}

void ShardWriter::append(const uint32_t* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (buf_.size() + 4 > kBuffer) flush();
    const uint32_t v = ids[i];
    buf_.push_back(static_cast<unsigned char>(v));
    buf_.push_back(static_cast<unsigned char>(v >> 8));
    if (token_bytes_ == 4) {
      buf_.push_back(static_cast<unsigned char>(v >> 16));
      buf_.push_back(static_cast<unsigned char>(v >> 24));
    }
    ++tokens_;
  }
}

ManifestShard ShardWriter::finish(const CorpusPosition& end) {
  flush();
  unsigned char header[kShardHeaderBytes];
  ShardHeader h;
  h.token_bytes = static_cast<uint32_t>(token_bytes_);
  h.vocab_size = static_cast<uint32_t>(vocab_size_);
  h.tokens = static_cast<uint64_t>(tokens_);
  h.split = validation_ ? 1 : 0;
  h.index = static_cast<uint32_t>(index_);
  shard_header_write(header, h);
  write_all(fd_, header, sizeof(header), 0, tmp_);
  if (::fsync(fd_) != 0)
    throw std::runtime_error("data build: syncing '" + tmp_ + "' failed: " + std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    throw std::runtime_error("data build: closing '" + tmp_ + "' failed: " + std::strerror(errno));
  }
  const std::string final_path = dir_ + "/" + name_;
  if (::rename(tmp_.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw std::runtime_error("data build: cannot rename '" + tmp_ + "' to '" + final_path +
                             "': " + std::strerror(err));
  }
  ManifestShard m;
  m.file = name_;
  m.tokens = tokens_;
  m.bytes = kShardHeaderBytes + static_cast<uint64_t>(tokens_) * token_bytes_;
  m.crc32 = crc_;
  m.end = end;
  return m;
}

std::string shard_verify(const std::string& dir, const ManifestShard& shard, bool validation,
                         int64_t index, int64_t token_bytes, int64_t vocab_size) {
  const std::string path = dir + "/" + shard.file;
  try {
    if (shard.file != shard_file_name(validation, index))
      return "the manifest names '" + shard.file + "' where '" +
             shard_file_name(validation, index) + "' belongs";
    DataFile f(path, "shard");
    if (f.size() != shard.bytes)
      return "it has " + std::to_string(f.size()) + " bytes, the manifest says " +
             std::to_string(shard.bytes);
    unsigned char head[kShardHeaderBytes];
    f.read_exact(0, head, sizeof(head));
    const ShardHeader h = shard_header_check(head, sizeof(head), f.size(), path);
    if (h.tokens != static_cast<uint64_t>(shard.tokens) ||
        h.token_bytes != static_cast<uint32_t>(token_bytes) ||
        h.vocab_size != static_cast<uint32_t>(vocab_size) || h.split != (validation ? 1u : 0u) ||
        h.index != static_cast<uint32_t>(index))
      return "its header disagrees with the manifest";
    const uint32_t crc = data_file_crc32(f, kShardHeaderBytes, f.size() - kShardHeaderBytes);
    if (crc != shard.crc32)
      return "its CRC-32 is " + crc32_hex(crc) + ", the manifest says " + crc32_hex(shard.crc32);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace longnet
