// Reading a corpus file as a stream of bytes, plain or compressed (gzip through zlib, zstd
// through libzstd), in bounded memory. A compressed file that is truncated or corrupt is an
// error naming the file, never a short read: a silently cut corpus would go unnoticed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace longnet {

enum class Compression { kNone, kGzip, kZstd };

// By name: "*.gz" is gzip, "*.zst" is zstd, anything else is plain.
Compression compression_from_name(const std::string& path);
// "plain", "gzip", "zstd".
const char* compression_name(Compression c);
// Whether this build can read `c` (zlib and libzstd are found at configure time).
bool compression_available(Compression c);

class InputStream {
 public:
  virtual ~InputStream() = default;
  // Up to `size` bytes of the (decompressed) contents into `buf`; 0 at the end. Throws
  // std::runtime_error naming the file on a read error, a corrupt stream, or a compressed
  // stream that ends before its end marker (truncated).
  virtual size_t read(char* buf, size_t size) = 0;
  // Bytes of the file (on disk, compressed where it is) that the contents read so far came from.
  virtual uint64_t consumed() const = 0;
};

// Opens `path` as `c`. Throws std::runtime_error naming the file when it cannot be opened, when
// its first bytes are not of that format (a ".gz" file that is not gzip), or when this build
// lacks the format (saying what to install).
std::unique_ptr<InputStream> input_stream_open(const std::string& path, Compression c);

}  // namespace longnet
