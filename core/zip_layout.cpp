// Bounds of a zip archive in memory (see zip_layout.h).
#include "longnet/core/zip_layout.h"

#include <cstdint>

#include "longnet/core/little_endian.h"

namespace longnet {
namespace {

// The little-endian integer of `bytes` (2, 4 or 8) bytes at b[at].
uint64_t le(const std::vector<char>& b, size_t at, int bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return bytes == 2 ? get_u16(p) : bytes == 4 ? get_u32(p) : get_u64(p);
}

}  // namespace

size_t zip_end_record(const std::vector<char>& b) {
  if (b.size() < 22) return std::string::npos;
  const size_t lowest = b.size() >= 22 + 65535 ? b.size() - 22 - 65535 : 0;
  for (size_t i = b.size() - 22 + 1; i-- > lowest;) {
    if (b[i] == 'P' && b[i + 1] == 'K' && b[i + 2] == 5 && b[i + 3] == 6) {
      const size_t comment = le(b, i + 20, 2);
      return i + 22 + comment == b.size() ? i : std::string::npos;
    }
  }
  return std::string::npos;
}

std::string zip_layout_error(const std::vector<char>& b, size_t end_record,
                             std::vector<ZipEntry>* out) {
  std::vector<ZipEntry> found_entries;
  const uint64_t size = b.size();
  uint64_t entries = le(b, end_record + 10, 2), cd_size = le(b, end_record + 12, 4),
           cd_ofs = le(b, end_record + 16, 4);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_ofs == 0xFFFFFFFF) {
    if (end_record < 20 || le(b, end_record - 20, 4) != 0x07064b50)
      return "the end record asks for zip64 and no zip64 locator precedes it";
    const uint64_t z = le(b, end_record - 20 + 8, 8);
    if (z > size || size - z < 56 || le(b, z, 4) != 0x06064b50)
      return "the zip64 end record lies outside the file";
    if (entries == 0xFFFF) entries = le(b, z + 32, 8);
    if (cd_size == 0xFFFFFFFF) cd_size = le(b, z + 40, 8);
    if (cd_ofs == 0xFFFFFFFF) cd_ofs = le(b, z + 48, 8);
  }
  if (cd_ofs > size || cd_size > size - cd_ofs)
    return "the central directory lies outside the file";
  uint64_t p = cd_ofs;
  const uint64_t cd_end = cd_ofs + cd_size;
  for (uint64_t e = 0; e < entries; ++e) {
    const std::string entry = "entry " + std::to_string(e) + " of the central directory";
    if (cd_end - p < 46 || le(b, p, 4) != 0x02014b50)
      return entry + " is cut short or has no signature";
    const uint64_t name = le(b, p + 28, 2), extra = le(b, p + 30, 2), comment = le(b, p + 32, 2);
    if (cd_end - p - 46 < name + extra + comment) return entry + " runs past the directory";
    uint64_t packed = le(b, p + 20, 4), unpacked = le(b, p + 24, 4), local = le(b, p + 42, 4);
    if (packed == 0xFFFFFFFF || unpacked == 0xFFFFFFFF || local == 0xFFFFFFFF) {
      // The zip64 extra field (id 1) holds, in this order, those of the three that are maxed.
      uint64_t q = p + 46 + name;
      const uint64_t q_end = q + extra;
      bool found = false;
      while (!found && q_end - q >= 4) {
        const uint64_t id = le(b, q, 2), len = le(b, q + 2, 2);
        if (q_end - q - 4 < len) return entry + " has an extra field cut short";
        if (id == 1) {
          uint64_t r = q + 4;
          for (uint64_t* v : {&unpacked, &packed, &local}) {
            if (*v != 0xFFFFFFFF) continue;
            if (q + 4 + len - r < 8) return entry + " has a zip64 field cut short";
            *v = le(b, r, 8);
            r += 8;
          }
          found = true;
        }
        q += 4 + len;
      }
      if (!found) return entry + " has no zip64 sizes";
    }
    if (local > size || size - local < 30 || le(b, local, 4) != 0x04034b50)
      return entry + " points to no local header inside the file";
    const uint64_t data = local + 30 + le(b, local + 26, 2) + le(b, local + 28, 2);
    if (data > size || packed > size - data) return entry + "'s data runs past the file";
    found_entries.push_back({std::string(b.data() + p + 46, size_t(name)), data, packed,
                             uint32_t(le(b, p + 16, 4)), int(le(b, p + 10, 2))});
    p += 46 + name + extra + comment;
  }
  if (out) *out = std::move(found_entries);
  return "";
}

}  // namespace longnet
