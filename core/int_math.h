// Integer helpers shared by every layer: rounding division, a non-negative modulus, and
// overflow-checked products and sums of sizes (inputs from configs and flags reach them).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>

namespace longnet {

// ceil(a / b) for a >= 0, b >= 1.
constexpr int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// a mod r in [0, r), for r >= 1 and any a.
constexpr int64_t pmod(int64_t a, int64_t r) {
  return ((a % r) + r) % r;
}

// a * b, or nullopt when it does not fit int64.
inline std::optional<int64_t> mul_checked(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// The product of all factors, or nullopt on overflow.
inline std::optional<int64_t> product_checked(std::initializer_list<int64_t> factors) {
  int64_t out = 1;
  for (int64_t f : factors)
    if (__builtin_mul_overflow(out, f, &out)) return std::nullopt;
  return out;
}

// a + b, or nullopt when it does not fit int64.
inline std::optional<int64_t> add_checked(int64_t a, int64_t b) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

}  // namespace longnet
