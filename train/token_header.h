// The 64-byte header of a token file (layout in token_data.h), written and checked here without
// LibTorch, so that the header fuzzer (tests/fuzz/fuzz_token_header.cpp) links only this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace longnet {

constexpr uint32_t kTokenHeaderBytes = 64;
constexpr uint32_t kTokenFileVersion = 1;
constexpr uint32_t kTokenVocabSize = 256;

// Whether the first `avail` bytes at b begin with a token file's magic number (false when
// fewer than its 8 bytes are given).
bool token_file_magic(const unsigned char* b, size_t avail);

// Fills header[0, 64) for a file of `train` training and `val` validation tokens.
void token_header_write(unsigned char* header, uint64_t train, uint64_t val);

struct TokenCounts {
  uint64_t train = 0, val = 0;
};

// Checks the `size` bytes of a whole token file at `bytes` (magic, version, vocabulary, token
// width, header size, and that exactly train + val tokens follow the header) and returns the
// counts. Throws std::runtime_error naming `path` and what to do otherwise.
TokenCounts token_header_check(const unsigned char* bytes, size_t size, const std::string& path);

}  // namespace longnet
