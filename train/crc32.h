// CRC-32 (the IEEE polynomial of zlib, gzip and PNG), the checksum of every shard in a dataset
// manifest: `python3 -c "import zlib,sys; print('%08x' % zlib.crc32(open(sys.argv[1],'rb')
// .read()[64:]))" SHARD` recomputes it. zlib's (vectorised) routine when the build has zlib,
// else a table-driven one of the same value, so that reading shards needs no optional library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longnet {

// The CRC-32 of `size` bytes at `data`, continuing from `crc` (0 to start).
uint32_t crc32_update(uint32_t crc, const void* data, size_t size);

// The table-driven routine itself (what crc32_update uses without zlib), for tests.
uint32_t crc32_update_portable(uint32_t crc, const void* data, size_t size);

// 8 lowercase hex digits, as manifests write it.
std::string crc32_hex(uint32_t crc);

}  // namespace longnet
