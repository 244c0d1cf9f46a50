// libFuzzer target for the token-file header check (train/token_header.h): any bytes, taken as
// a whole token file, must either be accepted with counts that add up to the file's size or be
// refused with std::runtime_error (never crash, read out of bounds, or throw anything else);
// and what token_header_write makes for those counts must be accepted again.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "longnet/train/token_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so that AddressSanitizer sees any read beyond the end.
  std::vector<unsigned char> bytes(data, data + size);
  try {
    const auto c = longnet::token_header_check(bytes.data(), bytes.size(), "fuzz.tokens");
    if (longnet::kTokenHeaderBytes + c.train + c.val != size) __builtin_trap();
    std::vector<unsigned char> again(bytes);
    longnet::token_header_write(again.data(), c.train, c.val);
    const auto c2 = longnet::token_header_check(again.data(), again.size(), "again.tokens");
    if (c2.train != c.train || c2.val != c.val) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
  return 0;
}
