// CRC-32 (the IEEE polynomial of zlib, gzip and PNG), through zlib: the checksum of every shard in
// a dataset manifest and of a checkpoint's contents. `python3 -c "import zlib,sys; print('%08x' %
// zlib.crc32(open(sys.argv[1],'rb').read()[64:]))" SHARD` recomputes a shard's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longnet {

// The CRC-32 of `size` bytes at `data`, continuing from `crc` (0 to start).
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

// 8 lowercase hex digits, as manifests write it.
std::string crc32_hex(uint32_t crc);

}  // namespace longnet
