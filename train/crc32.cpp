// CRC-32 (see crc32.h): zlib's when present; otherwise slicing-by-8 over tables built once.
#include "train/crc32.h"

#include <array>
#include <cstdio>
#include <cstring>

#include "longnet_tokenizer_config.h"

#if LONGNET_WITH_ZLIB
#include <zlib.h>
#endif

namespace longnet {
namespace {

using Tables = std::array<std::array<uint32_t, 256>, 8>;

const Tables& tables() {
  static const Tables t = [] {
    Tables t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int k = 1; k < 8; ++k) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    return t;
  }();
  return t;
}

uint32_t crc32_portable(uint32_t crc, const unsigned char* p, size_t n) {
  const Tables& t = tables();
  crc = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);  // little-endian hosts (x86-64, aarch64)
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

}  // namespace

uint32_t crc32_update_portable(uint32_t crc, const void* data, size_t size) {
  return crc32_portable(crc, static_cast<const unsigned char*>(data), size);
}

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
#if LONGNET_WITH_ZLIB
  // zlib takes uInt lengths: feed it at most 1 GiB at a time.
  while (size > 0) {
    const size_t n = size < (size_t{1} << 30) ? size : (size_t{1} << 30);
    crc = static_cast<uint32_t>(::crc32(crc, p, static_cast<uInt>(n)));
    p += n;
    size -= n;
  }
  return crc;
#else
  return crc32_portable(crc, p, size);  // the same value as zlib's
#endif
}

std::string crc32_hex(uint32_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", crc);
  return buf;
}

}  // namespace longnet
