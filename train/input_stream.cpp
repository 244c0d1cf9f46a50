// Plain, gzip and zstd input streams (see input_stream.h). Each holds one 256 KiB buffer of
// file bytes; the decompressors stream into the caller's buffer. A stream that ends before its
// end marker is an error: "truncated" is the commonest corruption of a copied corpus shard.
#include "longnet/train/input_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/longnet_tokenizer_config.h"

#if LONGNET_WITH_ZLIB
#include <zlib.h>
#endif
#if LONGNET_WITH_ZSTD
#include <zstd.h>
#include <zstd_errors.h>
#endif

namespace longnet {
namespace {

// The raw bytes of a file, read in blocks.
class FileReader {
 public:
  // A regular file only, checked without blocking (a FIFO source is refused, not waited on).
  explicit FileReader(const std::string& path) : path_(path) {
    fd_ = file_open_regular(path, "source file", &size_);
  }
  ~FileReader() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  size_t read(char* buf, size_t size) {
    for (;;) {
      const ssize_t n = ::read(fd_, buf, size);
      if (n >= 0) {
        offset_ += static_cast<uint64_t>(n);
        // A file cut or written to while it is read would give a torn document (a prefix of
        // the old contents, or old and new mixed): an error, not a short or long read. The
        // size now decides (a pseudo-file's, /proc's or /sys's, says nothing of its contents).
        struct stat st;
        const bool early_end = n == 0 && size > 0 && offset_ != size_, past = offset_ > size_;
        if ((early_end || past) && ::fstat(fd_, &st) == 0 &&
            (early_end ? uint64_t(st.st_size) < size_ : uint64_t(st.st_size) > size_))
          throw std::runtime_error(
              named() + ": " + (past ? "grew" : "shrank") + " while it was read (" +
              std::to_string(size_) + " bytes when opened, " + std::to_string(st.st_size) +
              " now): something writes to it; read it when it is not being changed, or copy it "
              "first");
        return static_cast<size_t>(n);
      }
      if (errno != EINTR)
        throw std::runtime_error(named() + ": read failed at byte " + std::to_string(offset_) +
                                 ": " + std::strerror(errno));
    }
  }
  const std::string& path() const { return path_; }
  // The path quoted for a message (control bytes and invalid UTF-8 escaped).
  std::string named() const { return "'" + printable_text(path_) + "'"; }
  uint64_t offset() const { return offset_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;  // when opened
  uint64_t offset_ = 0;
};

class PlainStream final : public InputStream {
 public:
  explicit PlainStream(const std::string& path) : file_(path) {}
  size_t read(char* buf, size_t size) override { return file_.read(buf, size); }
  uint64_t consumed() const override { return file_.offset(); }

 private:
  FileReader file_;
};

constexpr size_t kInBuffer = 256 << 10;

// The file's first bytes, kept for the decoder: checks that they start like the format
// (`starts(head)`, given at least `magic_size` bytes).
template <typename Starts>
size_t read_head(FileReader& file, std::vector<char>& in, Starts starts, size_t magic_size,
                 const char* format) {
  size_t got = 0;
  while (got < in.size()) {
    const size_t n = file.read(in.data() + got, in.size() - got);
    if (n == 0) break;
    got += n;
  }
  if (got == 0) throw std::runtime_error(file.named() + " is empty, not a " + format + " file");
  if (got < magic_size || !starts(reinterpret_cast<const unsigned char*>(in.data())))
    throw std::runtime_error(file.named() + " is not a " + format +
                             " file (its first bytes are not the " + format +
                             " magic number); rename it if it is not compressed");
  return got;
}

#if LONGNET_WITH_ZLIB
class GzipStream final : public InputStream {
 public:
  explicit GzipStream(const std::string& path) : file_(path), in_(kInBuffer) {
    const size_t got = read_head(
        file_, in_, [](const unsigned char* h) { return h[0] == 0x1f && h[1] == 0x8b; }, 2, "gzip");
    std::memset(&z_, 0, sizeof(z_));
    if (inflateInit2(&z_, 15 + 16) != Z_OK)  // gzip wrapper only
      throw std::runtime_error("'" + path + "': zlib inflateInit2 failed");
    z_.next_in = reinterpret_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(got);
    header_watch();
    eof_ = got < in_.size();
  }
  ~GzipStream() override { inflateEnd(&z_); }

  size_t read(char* buf, size_t size) override {
    for (;;) {
      if (z_.avail_in == 0 && !eof_) refill();
      if (member_done_) {
        if (z_.avail_in == 0) return 0;  // eof_ is set: refill found nothing more
        if (static_cast<unsigned char>(*z_.next_in) != 0x1f) {
          // Zero bytes padding the file past its last member (tape blocks; `gzip -d` takes them
          // too) end it; anything else there is not gzip data.
          const uint64_t at = consumed();
          if (rest_is_zeros()) return 0;
          throw std::runtime_error(file_.named() + ": the bytes after its gzip stream (at byte " +
                                   std::to_string(at) +
                                   ") are neither another gzip member nor zero padding: the file "
                                   "is damaged or two files were joined");
        }
        inflateReset(&z_);  // another gzip member follows (as `cat a.gz b.gz` makes)
        header_watch();
        member_done_ = false;
      }
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
      const size_t avail_before = z_.avail_out;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw std::runtime_error(file_.named() + ": corrupt gzip data near compressed byte " +
                                 std::to_string(consumed()) + ": " +
                                 (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)));
      }
      const size_t produced = avail_before - z_.avail_out;
      if (produced > 0) return produced;
      if (!member_done_ && z_.avail_in == 0 && eof_ && header_.done == 0)
        throw std::runtime_error(
            file_.named() + ": the header of the gzip member at byte " +
            std::to_string(member_start_) + " does not end before the file does (at byte " +
            std::to_string(consumed()) +
            "): its flags announce fields (extra, name, comment) that are not there, or the "
            "file was cut short inside the header; the file is damaged, copy it again");
      if (!member_done_ && z_.avail_in == 0 && eof_)
        throw std::runtime_error(file_.named() + ": truncated gzip file (the stream ends at byte " +
                                 std::to_string(consumed()) +
                                 " before its end marker); the file was cut short, copy it again");
    }
  }

 private:
  void refill() {
    const size_t n = file_.read(in_.data(), in_.size());
    z_.next_in = reinterpret_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(n);
    if (n == 0) eof_ = true;
  }
  uint64_t consumed() const override { return file_.offset() - z_.avail_in; }
  // zlib fills header_ while it reads a member's header (done: 1 once it has ended); the
  // fields' contents are not kept.
  void header_watch() {
    std::memset(&header_, 0, sizeof(header_));
    inflateGetHeader(&z_, &header_);
    member_start_ = consumed();
  }
  // Whether every byte from here to the end of the file is 0 (reads them).
  bool rest_is_zeros() {
    for (;;) {
      for (; z_.avail_in > 0; --z_.avail_in, ++z_.next_in)
        if (*z_.next_in != 0) return false;
      if (eof_) return true;
      refill();
    }
  }

  FileReader file_;
  std::vector<char> in_;
  z_stream z_;
  gz_header header_;
  uint64_t member_start_ = 0;
  bool eof_ = false, member_done_ = false;
};
#endif

#if LONGNET_WITH_ZSTD
class ZstdStream final : public InputStream {
 public:
  explicit ZstdStream(const std::string& path) : file_(path), in_(kInBuffer) {
    // A zstd frame (28 b5 2f fd) or a skippable frame (50..5f 2a 4d 18: pzstd starts its
    // files with one), which the decoder steps over.
    const size_t got = read_head(
        file_, in_,
        [](const unsigned char* h) {
          return (h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) ||
                 ((h[0] & 0xf0) == 0x50 && h[1] == 0x2a && h[2] == 0x4d && h[3] == 0x18);
        },
        4, "zstd");
    ds_ = ZSTD_createDStream();
    if (!ds_) throw std::bad_alloc();
    ZSTD_initDStream(ds_);
    input_ = {in_.data(), got, 0};
    eof_ = got < in_.size();
  }
  ~ZstdStream() override { ZSTD_freeDStream(ds_); }

  size_t read(char* buf, size_t size) override {
    for (;;) {
      if (input_.pos == input_.size && !eof_) {
        const size_t n = file_.read(in_.data(), in_.size());
        input_ = {in_.data(), n, 0};
        if (n == 0) eof_ = true;
      }
      ZSTD_outBuffer out = {buf, size, 0};
      const size_t in_before = input_.pos;
      const size_t rc = ZSTD_decompressStream(ds_, &out, &input_);
      if (ZSTD_isError(rc) &&
          ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge)  // not damage
        throw std::runtime_error(file_.named() +
                                 ": compressed with a window larger than the 128 MiB this reader "
                                 "allows (zstd --long=28 or more); recompress it without --long "
                                 "(or with --long=27), e.g. zstd -dc --long=31 F | zstd -o F2");
      if (ZSTD_isError(rc) && ZSTD_getErrorCode(rc) == ZSTD_error_checksum_wrong)
        throw std::runtime_error(file_.named() +
                                 ": a zstd frame's checksum does not match the data it "
                                 "decompresses to (a frame ending before compressed byte " +
                                 std::to_string(file_.offset()) +
                                 "): the file is damaged, copy it again");
      if (ZSTD_isError(rc))
        throw std::runtime_error(file_.named() + ": corrupt zstd data near compressed byte " +
                                 std::to_string(consumed()) + ": " + ZSTD_getErrorName(rc));
      // 0: a frame is complete and flushed. A call that did nothing (no input left) says
      // nothing about the last frame.
      if (input_.pos != in_before || out.pos > 0) frame_done_ = rc == 0;
      if (out.pos > 0) return out.pos;
      if (input_.pos == input_.size && eof_) {
        if (!frame_done_)
          throw std::runtime_error(file_.named() +
                                   ": truncated zstd file (the stream ends at byte " +
                                   std::to_string(consumed()) +
                                   " inside a frame); the file was cut short, copy it again");
        return 0;
      }
    }
  }

 private:
  uint64_t consumed() const override { return file_.offset() - (input_.size - input_.pos); }

  FileReader file_;
  std::vector<char> in_;
  ZSTD_DStream* ds_ = nullptr;
  ZSTD_inBuffer input_{};
  bool eof_ = false, frame_done_ = false;
};
#endif

}  // namespace

Compression compression_from_name(const std::string& path) {
  if (ends_with_nocase(path, ".gz")) return Compression::kGzip;
  if (ends_with_nocase(path, ".zst")) return Compression::kZstd;
  return Compression::kNone;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    default:
      return "plain";
  }
}

bool compression_available(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return LONGNET_WITH_ZLIB;
    case Compression::kZstd:
      return LONGNET_WITH_ZSTD;
    default:
      return true;
  }
}

std::unique_ptr<InputStream> input_stream_open(const std::string& path, Compression c) {
  switch (c) {
    case Compression::kGzip:
#if LONGNET_WITH_ZLIB
      return std::make_unique<GzipStream>(path);
#else
      throw std::runtime_error("'" + path +
                               "': this build cannot read gzip files: install zlib1g-dev and "
                               "reconfigure, or decompress it first (gunzip)");
#endif
    case Compression::kZstd:
#if LONGNET_WITH_ZSTD
      return std::make_unique<ZstdStream>(path);
#else
      throw std::runtime_error("'" + path +
                               "': this build cannot read zstd files: install libzstd-dev and "
                               "reconfigure (cmake -DLONGNET_ZSTD=ON), or decompress it first "
                               "(unzstd)");
#endif
    default:
      return std::make_unique<PlainStream>(path);
  }
}

}  // namespace longnet
