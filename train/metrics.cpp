// JSON Lines metrics (see metrics.h).
#include "longnet/train/metrics.h"

#include "longnet/core/file_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace longnet {

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return out + "\"";
}

JsonLine& JsonLine::add_raw(const std::string& key, const std::string& json_value) {
  body_ += (body_.empty() ? "{" : ",") + json_quote(key) + ":" + json_value;
  return *this;
}

JsonLine& JsonLine::add(const std::string& key, double value) {
  if (!std::isfinite(value)) return add_raw(key, "null");
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), value);  // shortest text that reads back exactly
  return add_raw(key, std::string(buf, r.ptr));
}

JsonLine& JsonLine::add(const std::string& key, const std::string& value) {
  return add_raw(key, json_quote(value));
}

JsonLine& JsonLine::add(const std::string& key, bool value) {
  return add_raw(key, value ? "true" : "false");
}

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  output_file_prepare(path, "metrics file");  // (never opens a FIFO or a directory)
  out_.open(path, std::ios::app);
  if (!out_)
    throw std::runtime_error("metrics file '" + path +
                             "': cannot open for appending: " + std::strerror(errno));
}

void MetricsWriter::write(const JsonLine& line) {
  out_ << line.str() << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error("metrics file '" + path_ + "': write failed (disk full?)");
}

}  // namespace longnet
