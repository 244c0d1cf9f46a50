// Small text helpers for messages, shared by every layer.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>
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

// Bytes from a file, quoted for a message: at most `max` of them, each outside printable ASCII
// (and the quote and backslash) as \xNN, so that no control character or terminal escape reaches
// the terminal: printable("a\x1b[2J") == "'a\x1b[2J'".
inline std::string printable(std::string_view bytes, size_t max = 40) {
  std::string s = "'";
  for (unsigned char c : bytes.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      s.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      s += buf;
    }
  }
  return s + (bytes.size() > max ? "...'" : "'");
}

// Text from a file or a library's message about one, for a message: valid UTF-8 (but no
// control character) as it is, every other byte (controls, C1 controls, invalid UTF-8) as \xNN,
// so that nothing the file holds can move the cursor or restyle the terminal.
inline std::string printable_text(std::string_view text) {
  std::string out;
  auto escape = [&](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\x%02x", c);
    out += buf;
  };
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // A UTF-8 sequence of a code point from U+00A0 on (shortest form, no surrogate), else a byte.
    const size_t n = c >= 0xc2 && c <= 0xdf   ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
    uint32_t cp = n == 2 ? c & 0x1fu : n == 3 ? c & 0x0fu : c & 0x07u;
    bool ok = n > 0 && i + n <= text.size();
    for (size_t k = 1; ok && k < n; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      ok = (b & 0xc0) == 0x80;
      cp = cp << 6 | (b & 0x3fu);
    }
    ok = ok && cp >= 0xa0 && !(cp >= 0xd800 && cp <= 0xdfff) && cp <= 0x10ffff &&
         !(n == 3 && cp < 0x800) && !(n == 4 && cp < 0x10000);
    if (ok) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      escape(c);
      ++i;
    }
  }
  return out;
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
