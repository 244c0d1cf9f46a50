// Shard headers: writing and checking (see shard_header.h).
#include "longnet/train/shard_header.h"

#include <cstring>
#include <stdexcept>

#include "longnet/core/little_endian.h"

namespace longnet {
namespace {

constexpr char kMagic[8] = {'L', 'N', 'S', 'H', 'A', 'R', 'D', '1'};

// That exactly `tokens` tokens of `width` bytes follow a `header`-byte header in a file of
// `file_size` bytes; the comparison is done by division, so no product can overflow.
void body_check(uint64_t tokens, uint32_t width, uint32_t header, uint64_t file_size,
                const std::string& who, const std::string& fix) {
  const uint64_t body = file_size - header;  // file_size >= header checked by the caller
  if (tokens > body / width)
    throw std::runtime_error(who + " is truncated: its header promises " + std::to_string(tokens) +
                             " tokens of " + std::to_string(width) + " bytes but only " +
                             std::to_string(body) + " bytes follow the " + std::to_string(header) +
                             "-byte header" + fix);
  if (tokens * width != body)
    throw std::runtime_error(who + " has " + std::to_string(body - tokens * width) +
                             " bytes more than its header promises (" + std::to_string(tokens) +
                             " tokens of " + std::to_string(width) +
                             " bytes): not a complete shard" + fix);
}

}  // namespace

void shard_header_write(unsigned char* header, const ShardHeader& h) {
  std::memset(header, 0, kShardHeaderBytes);
  std::memcpy(header, kMagic, 8);
  put_u32(header + 8, kShardVersion);
  put_u32(header + 12, h.token_bytes);
  put_u32(header + 16, h.vocab_size);
  put_u32(header + 20, kShardHeaderBytes);
  put_u64(header + 24, h.tokens);
  put_u32(header + 32, h.split);
  put_u32(header + 36, h.index);
}

bool shard_magic(const unsigned char* b, size_t avail) {
  return avail >= 8 && std::memcmp(b, kMagic, 8) == 0;
}

ShardHeader shard_header_check(const unsigned char* b, size_t avail, uint64_t file_size,
                               const std::string& path) {
  const std::string who = "shard '" + path + "'";
  const std::string fix = "; rebuild the dataset (rerun the same `longnet data build`)";
  if (file_size < kShardHeaderBytes || avail < kShardHeaderBytes)
    throw std::runtime_error(who + " is truncated (" + std::to_string(file_size) +
                             " bytes, shorter than its 64-byte header)" + fix);
  if (!shard_magic(b, avail))
    throw std::runtime_error(who + " is not a longnet shard (bad magic; expected \"LNSHARD1\")" +
                             fix);
  const uint32_t version = get_u32(b + 8), header = get_u32(b + 20);
  if (version != kShardVersion)
    throw std::runtime_error(who + " has format version " + std::to_string(version) +
                             "; this longnet reads version " + std::to_string(kShardVersion) + fix);
  ShardHeader h;
  h.token_bytes = get_u32(b + 12);
  h.vocab_size = get_u32(b + 16);
  h.tokens = get_u64(b + 24);
  h.split = get_u32(b + 32);
  h.index = get_u32(b + 36);
  if ((h.token_bytes != 2 && h.token_bytes != 4) || header != kShardHeaderBytes || h.split > 1)
    throw std::runtime_error(who + " has " + std::to_string(h.token_bytes) +
                             " bytes per token, a " + std::to_string(header) +
                             "-byte header and split " + std::to_string(h.split) +
                             "; expected 2 or 4, 64, and 0 or 1" + fix);
  if (h.vocab_size == 0 || (h.token_bytes == 2 && h.vocab_size > 65536))
    throw std::runtime_error(who + " has vocabulary size " + std::to_string(h.vocab_size) +
                             ", which its " + std::to_string(h.token_bytes) +
                             "-byte tokens cannot hold" + fix);
  body_check(h.tokens, h.token_bytes, kShardHeaderBytes, file_size, who, fix);
  return h;
}

bool llmc_magic(const unsigned char* b, size_t avail) {
  if (avail < 4) return false;
  const int32_t m = static_cast<int32_t>(get_u32(b));
  return m == kLlmcMagicU16 || m == kLlmcMagicU32;
}

LlmcHeader llmc_header_check(const unsigned char* b, size_t avail, uint64_t file_size,
                             const std::string& path) {
  const std::string who = "llm.c shard '" + path + "'";
  const std::string fix = "; re-create it with the tool that wrote it";
  // (a short file that starts with no llm.c magic is named by its magic below, not as cut short)
  if ((file_size < kLlmcHeaderBytes || avail < kLlmcHeaderBytes) &&
      (avail < 8 || llmc_magic(b, avail) || shard_magic(b, avail)))
    throw std::runtime_error(who + " is truncated (" + std::to_string(file_size) +
                             " bytes, shorter than its 1024-byte header)" + fix);
  const int32_t magic = static_cast<int32_t>(get_u32(b)),
                version = static_cast<int32_t>(get_u32(b + 4));
  LlmcHeader h;
  if (magic == kLlmcMagicU16 && version == kLlmcVersionU16) {
    h.token_bytes = 2;
  } else if (magic == kLlmcMagicU32 && version == kLlmcVersionU32) {
    h.token_bytes = 4;
  } else if (shard_magic(b, avail)) {
    throw std::runtime_error(who +
                             " is a longnet shard (LNSHARD1), not an llm.c one: its "
                             "directory is a longnet dataset (read with data.format longnet or "
                             "auto, which finds its manifest.json)");
  } else {
    throw std::runtime_error(who + " has magic " + std::to_string(magic) + " and version " +
                             std::to_string(version) + "; this longnet reads " +
                             std::to_string(kLlmcMagicU16) + " version 1 (uint16 tokens) and " +
                             std::to_string(kLlmcMagicU32) +
                             " version 7 (uint32 tokens), and nanoGPT's headerless uint16 files "
                             "under their own names, train.bin and val.bin");
  }
  if (file_size < kLlmcHeaderBytes || avail < kLlmcHeaderBytes)
    throw std::runtime_error(who + " is truncated (" + std::to_string(file_size) +
                             " bytes, shorter than its 1024-byte header)" + fix);
  const int32_t tokens = static_cast<int32_t>(get_u32(b + 8));
  if (tokens < 0)
    throw std::runtime_error(who + " has a negative token count " + std::to_string(tokens) + fix);
  h.tokens = static_cast<uint64_t>(tokens);
  body_check(h.tokens, h.token_bytes, kLlmcHeaderBytes, file_size, who, fix);
  return h;
}

}  // namespace longnet
