// Small text helpers for messages, shared by every layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longnet {

// The items separated by sep: join({"a", "b"}, ", ") == "a, b".
inline std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
  return s;
}

// "[2048, 4096]".
inline std::string ints_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace longnet
