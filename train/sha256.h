// SHA-256 (FIPS 180-4), for content hashes that a user can check with `sha256sum`: a
// tokenizer's model file is named in manifests by its digest, so a token file can be matched
// with the tokenizer that made it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace longnet {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // The digest as 64 lowercase hex digits; the object is spent afterwards.
  std::string hex_digest();

 private:
  void compress(const unsigned char* block);
  uint32_t h_[8];
  unsigned char buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// SHA-256 of a string, as hex.
std::string sha256_hex(std::string_view data);

}  // namespace longnet
