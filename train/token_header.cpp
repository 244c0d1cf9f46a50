// Token file header: writing and checking (see token_header.h).
#include "longnet/train/token_header.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "longnet/core/little_endian.h"

namespace longnet {
namespace {

constexpr char kMagic[8] = {'L', 'N', 'T', 'O', 'K', 'E', 'N', 'S'};

}  // namespace

bool token_file_magic(const unsigned char* b, size_t avail) {
  return avail >= sizeof(kMagic) && std::memcmp(b, kMagic, sizeof(kMagic)) == 0;
}

void token_header_write(unsigned char* header, uint64_t train, uint64_t val) {
  std::memset(header, 0, kTokenHeaderBytes);
  std::memcpy(header, kMagic, 8);
  put_u32(header + 8, kTokenFileVersion);
  put_u32(header + 12, kTokenVocabSize);
  put_u32(header + 16, 1);
  put_u32(header + 20, kTokenHeaderBytes);
  put_u64(header + 24, train);
  put_u64(header + 32, val);
}

TokenCounts token_header_check(const unsigned char* b, size_t size, const std::string& path) {
  const std::string who = "token file '" + path + "'";
  const std::string rebuild = "; rebuild it with: longnet data build SRC_DIR " + path;
  if (size > 0 && std::memcmp(b, kMagic, std::min<size_t>(8, size)) != 0)
    throw std::runtime_error(who +
                             " is not a longnet token file (bad magic; expected "
                             "\"LNTOKENS\"): give a dataset or token file (make one with: "
                             "longnet data build SRC_DIR OUT.tokens, OUT a new path)");
  if (size < kTokenHeaderBytes)
    throw std::runtime_error(who + " is truncated (" + std::to_string(size) +
                             " bytes, shorter than its 64-byte header)" + rebuild);
  const uint32_t version = get_u32(b + 8), vocab = get_u32(b + 12), width = get_u32(b + 16),
                 header = get_u32(b + 20);
  if (version != kTokenFileVersion)
    throw std::runtime_error(who + " has format version " + std::to_string(version) +
                             "; this longnet reads version " + std::to_string(kTokenFileVersion) +
                             rebuild);
  if (vocab != kTokenVocabSize || width != 1 || header != kTokenHeaderBytes)
    throw std::runtime_error(who + " has vocabulary " + std::to_string(vocab) + ", " +
                             std::to_string(width) + " bytes per token and a " +
                             std::to_string(header) +
                             "-byte header; this longnet reads byte tokens (256, 1, 64)" + rebuild);
  TokenCounts c{get_u64(b + 24), get_u64(b + 32)};
  const uint64_t body = size - kTokenHeaderBytes;
  if (c.train > body || c.val > body - c.train)
    throw std::runtime_error(who + " is truncated: its header promises " + std::to_string(c.train) +
                             " training + " + std::to_string(c.val) + " validation tokens but " +
                             std::to_string(body) + " bytes follow the header" + rebuild);
  if (c.train + c.val != body)
    throw std::runtime_error(who + " has " + std::to_string(body - c.train - c.val) +
                             " bytes more than its header promises (" + std::to_string(c.train) +
                             " + " + std::to_string(c.val) + " tokens): not a complete token file" +
                             rebuild);
  return c;
}

}  // namespace longnet
