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

// The wide encoding of text whose first bytes hold NULs the way UTF-16 or UTF-32 text does (a
// byte order mark, or mostly ASCII with NULs beside each letter), or nullptr: tells text in
// another encoding from binary data in a message. `head` is the start of the file.
inline const char* wide_text_encoding(std::string_view head) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  if (head.size() >= 4 && b(0) == 0xFF && b(1) == 0xFE && b(2) == 0 && b(3) == 0) return "UTF-32LE";
  if (head.size() >= 4 && b(0) == 0 && b(1) == 0 && b(2) == 0xFE && b(3) == 0xFF) return "UTF-32BE";
  if (head.size() >= 2 && b(0) == 0xFF && b(1) == 0xFE) return "UTF-16LE";
  if (head.size() >= 2 && b(0) == 0xFE && b(1) == 0xFF) return "UTF-16BE";
  // No mark: count the NULs at each byte of a 4-byte unit over the first 512 bytes.
  const size_t n = (head.size() < 512 ? head.size() : 512) & ~size_t(3);
  if (n < 8) return nullptr;
  size_t zeros[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; ++i) zeros[i % 4] += b(i) == 0;
  const size_t units = n / 4;
  std::string kind;  // 'z' where (nearly) every unit has a NUL, 'c' where (nearly) none has
  for (size_t z : zeros) kind += z * 10 >= units * 9 ? 'z' : z * 10 <= units ? 'c' : '?';
  if (kind == "czzz") return "UTF-32LE";
  if (kind == "zzzc") return "UTF-32BE";
  if (kind == "czcz") return "UTF-16LE";
  if (kind == "zczc") return "UTF-16BE";
  return nullptr;
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

// The length of the UTF-8 sequence at text[i] when it is a valid one (shortest form, no
// surrogate, at most U+10FFFF; 1 for ASCII), else 0.
inline size_t utf8_sequence_at(std::string_view text, size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) return 1;
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
  ok = ok && !(cp >= 0xd800 && cp <= 0xdfff) && cp <= 0x10ffff && !(n == 3 && cp < 0x800) &&
       !(n == 4 && cp < 0x10000);
  return ok ? n : 0;
}

// text for a message: as it is up to max bytes, else its first bytes (not cutting a UTF-8
// character) and "...(N characters)".
inline std::string text_cut(std::string_view text, size_t max = 240) {
  if (text.size() <= max) return std::string(text);
  size_t keep = max * 5 / 6;
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xc0) == 0x80) --keep;
  return std::string(text.substr(0, keep)) + "...(" + std::to_string(text.size()) + " bytes)";
}

// How many bytes of text belong to no valid UTF-8 sequence.
inline size_t utf8_invalid_bytes(std::string_view text) {
  size_t bad = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence_at(text, i);
    bad += n == 0;
    i += n ? n : 1;
  }
  return bad;
}

// The text with every byte that is no UTF-8 replaced by U+FFFD: for records that strict UTF-8
// readers take (a safetensors header), where a file name may hold any byte.
inline std::string valid_utf8(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_sequence_at(text, i);
    out.append(n ? text.substr(i, n) : std::string_view("\xef\xbf\xbd"));
    i += n ? n : 1;
  }
  return out;
}

// Text from a file or a library's message about one, for a message: valid UTF-8 (but no
// control character) as it is, every other byte (controls, C1 controls, invalid UTF-8) as \xNN,
// so that nothing the file holds can move the cursor or restyle the terminal.
inline std::string printable_text(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    // Printable ASCII, or a code point from U+00A0 on (C1 controls are U+0080..U+009F).
    const size_t n = utf8_sequence_at(text, i);
    const bool ok = n == 1
                        ? c >= 0x20 && c < 0x7f
                        : n > 0 && !(c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0);
    if (ok) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
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
