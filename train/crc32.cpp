// CRC-32 through zlib (see crc32.h).
#include "longnet/train/crc32.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>

namespace longnet {

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (size > 0) {  // zlib takes uInt lengths: at most 1 GiB at a time
    const uInt n = static_cast<uInt>(std::min<size_t>(size, size_t(1) << 30));
    c = ::crc32(c, p, n);
    p += n;
    size -= n;
  }
  return static_cast<uint32_t>(c);
}

std::string crc32_hex(uint32_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", crc);
  return buf;
}

}  // namespace longnet
