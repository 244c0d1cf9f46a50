// The strict JSON reader (see json_read.h): recursive descent over the text.
#include "longnet/train/json_read.h"

#include "longnet/core/text.h"

#include <cctype>
#include <cstring>
#include <stdexcept>

namespace longnet {
namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& name, const JsonParseOptions& o)
      : s_(text), name_(name), o_(o) {}

  JsonValue document() {
    JsonValue v = value(0);
    space();
    if (pos_ != s_.size()) fail("text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw std::runtime_error(name_ + ":" + std::to_string(line) + ":" + std::to_string(col) +
                             ": not valid JSON: " + what);
  }
  // Newlines occur only between tokens (a string cannot hold a raw one): count them here.
  void space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r' || s_[pos_] == '\n')) {
      line_ += s_[pos_] == '\n';
      ++pos_;
    }
  }
  bool take(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  JsonValue value(int depth) {
    if (depth > o_.max_depth) fail("nested more than " + std::to_string(o_.max_depth) + " deep");
    space();
    if (pos_ >= s_.size()) fail("unexpected end of the text");
    JsonValue v;
    v.line = line_;
    const char c = s_[pos_];
    if (c == '{') {
      v.type = JsonValue::Type::kObject;
      ++pos_;
      space();
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return v;
      }
      for (;;) {
        space();
        if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
        std::string key = string();
        if (!o_.duplicate_keys && v.find(key)) fail("duplicate key \"" + key + "\"");
        space();
        if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':' after a key");
        ++pos_;
        v.members.emplace_back(std::move(key), value(depth + 1));
        space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
        } else if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          return v;
        } else {
          fail("expected ',' or '}' in an object");
        }
      }
    }
    if (c == '[') {
      v.type = JsonValue::Type::kArray;
      ++pos_;
      space();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return v;
      }
      for (;;) {
        v.items.push_back(value(depth + 1));
        space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
        } else if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return v;
        } else {
          fail("expected ',' or ']' in an array");
        }
      }
    }
    if (c == '"') {
      v.type = JsonValue::Type::kString;
      v.text = string();
      return v;
    }
    if (take("true") || take("false")) {
      v.type = JsonValue::Type::kBool;
      v.boolean = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';
      return v;
    }
    if (take("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = JsonValue::Type::kNumber;
      const size_t start = pos_;
      if (s_[pos_] == '-') ++pos_;
      if (pos_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_])))
        fail("a '-' without digits");
      if (s_[pos_] == '0' && pos_ + 1 < s_.size() &&
          std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))
        fail("a number with a leading zero");
      auto digits = [&] {
        const size_t d = pos_;
        while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
        if (pos_ == d) fail("expected digits in a number");
      };
      digits();
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        digits();
      }
      if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
        digits();
      }
      v.text = s_.substr(start, pos_ - start);
      return v;
    }
    fail("unexpected character " + printable(std::string_view(&c, 1)));
  }

  static void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t hex4() {
    if (pos_ + 4 > s_.size()) fail("a \\u escape cut short");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<uint32_t>(h - 'A' + 10);
      else
        fail("a \\u escape with a non-hex digit");
    }
    return v;
  }

  std::string string() {
    ++pos_;  // the opening quote
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("a string without its closing quote");
      const unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("a control character inside a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= s_.size()) fail("a string cut short after '\\'");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (!take("\\u")) fail("a lone high surrogate");
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("a high surrogate without its low half");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
            // A byte that is no UTF-8 (json_quote's escape, Python's surrogateescape).
            out += static_cast<char>(cp & 0xFF);
            break;
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("a lone low surrogate");
          }
          utf8_append(out, cp);
          break;
        }
        default:
          fail(std::string("unknown escape '\\") + e + "'");
      }
    }
  }

  const std::string& s_;
  const std::string& name_;
  const JsonParseOptions& o_;
  size_t pos_ = 0;
  int line_ = 1;
};

}  // namespace

const JsonValue* JsonValue::find(const std::string& key) const {
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

const char* JsonValue::type_name() const {
  switch (type) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "boolean";
    case Type::kNumber:
      return "number";
    case Type::kString:
      return "string";
    case Type::kArray:
      return "array";
    case Type::kObject:
      return "object";
  }
  return "?";
}

JsonValue json_parse(const std::string& text, const std::string& name,
                     const JsonParseOptions& options) {
  return Parser(text, name, options).document();
}

}  // namespace longnet
