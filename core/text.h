// Small text helpers for messages, shared by every layer.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace longnet {

// Whether name ends with suffix, ASCII letters compared without case: file extensions (".JSONL",
// ".Gz" are ".jsonl", ".gz").
inline bool ends_with_nocase(const std::string& name, const std::string& suffix) {
  if (name.size() < suffix.size()) return false;
  const size_t at = name.size() - suffix.size();
  for (size_t i = 0; i < suffix.size(); ++i) {
    char a = name[at + i], b = suffix[i];
    if (a >= 'A' && a <= 'Z') a = char(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = char(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

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

// "1:02:03" for 3723 seconds; "?" for a negative, huge or non-finite time.
inline std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e12) return "?";
  const auto s = static_cast<long long>(seconds);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// The time now in UTC through strftime's format: "2026-12-04T21:30:05Z" by default.
inline std::string utc_time(const char* format = "%Y-%m-%dT%H:%M:%SZ") {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char buf[64] = {0};
  std::strftime(buf, sizeof(buf), format, &utc);
  return buf;
}

}  // namespace longnet
