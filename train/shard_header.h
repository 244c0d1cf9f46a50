// The headers of token shards: longnet's own (written by `longnet data build`) and the llm.c /
// nanoGPT-speedrun `.bin` layout (read only). Plain C++ (no LibTorch), every integer
// range-checked against the file's size before any arithmetic, for fuzzing and hostile inputs.
//
// longnet shard (integers little-endian):
//   offset  0  char[8]  "LNSHARD1"
//           8  u32      format version (1)
//          12  u32      bytes per token: 2 (uint16, vocabulary <= 65,536) or 4 (uint32)
//          16  u32      vocabulary size (every id is below it)
//          20  u32      header size (64)
//          24  u64      tokens n
//          32  u32      split: 0 training, 1 validation
//          36  u32      index of the shard within its split
//          40  zeros up to 64
//          64  n tokens
//
// llm.c / nanoGPT shard: 256 int32 (1024 bytes): [0] magic, [1] version, [2] tokens n, then n
// tokens: magic 20240520 with version 1 is uint16 (GPT-2 tokens), magic 20240801 with version 7
// is uint32 (Llama 3 tokens).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longnet {

constexpr uint32_t kShardHeaderBytes = 64;
constexpr uint32_t kShardVersion = 1;
constexpr uint32_t kLlmcHeaderBytes = 1024;
constexpr int32_t kLlmcMagicU16 = 20240520, kLlmcVersionU16 = 1;
constexpr int32_t kLlmcMagicU32 = 20240801, kLlmcVersionU32 = 7;

struct ShardHeader {
  uint32_t token_bytes = 2;
  uint32_t vocab_size = 0;
  uint64_t tokens = 0;
  uint32_t split = 0;  // 0 training, 1 validation
  uint32_t index = 0;
};

// Fills header[0, 64).
void shard_header_write(unsigned char* header, const ShardHeader& h);

// Checks the first `avail` bytes (at least 64 unless the file is shorter) of a shard whose file
// has `file_size` bytes: magic, version, width, header size, and that exactly `tokens` tokens
// follow the header. Throws std::runtime_error naming `path` and what to do otherwise.
ShardHeader shard_header_check(const unsigned char* bytes, size_t avail, uint64_t file_size,
                               const std::string& path);

// Whether the first 8 bytes are a longnet shard's magic.
bool shard_magic(const unsigned char* bytes, size_t avail);

struct LlmcHeader {
  uint32_t token_bytes = 2;
  uint64_t tokens = 0;
};

// The same for an llm.c / nanoGPT `.bin` shard (`avail` >= 1024 unless the file is shorter).
LlmcHeader llmc_header_check(const unsigned char* bytes, size_t avail, uint64_t file_size,
                             const std::string& path);

// Whether the first 4 bytes are one of the llm.c magics.
bool llmc_magic(const unsigned char* bytes, size_t avail);

}  // namespace longnet
