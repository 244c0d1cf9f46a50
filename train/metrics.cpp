// JSON Lines metrics (see metrics.h).
#include "longnet/train/metrics.h"

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/json_read.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace longnet {

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  auto u_escape = [&](unsigned v) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "\\u%04x", v);
    out += buf;
  };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_sequence_at(s, i);
    if (n > 1) {  // UTF-8 passes through
      out.append(s, i, n);
      i += n;
      continue;
    }
    ++i;
    if (n == 0) {
      // A byte that is no UTF-8 (a file name may hold any): as Python's surrogateescape writes
      // it, \udcXX, which json_read (and Python's os.fsencode) turn back into the byte.
      u_escape(0xdc00u | c);
      continue;
    }
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
        if (c < 0x20 || c == 0x7f)
          u_escape(c);
        else
          out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

JsonLine& JsonLine::add_raw(const std::string& key, const std::string& json_value) {
  body_ += (body_.empty() ? "{" : ",") + json_quote(key) + ":" + json_value;
  return *this;
}

bool JsonLine::is_object_text(const std::string& text) {
  if (text.empty() || text.front() != '{' || text.back() != '}' ||
      text.find_first_of("\n\r") != std::string::npos)
    return false;
  try {
    return json_parse(text, "metrics row").type == JsonValue::Type::kObject;
  } catch (const std::exception&) {
    return false;
  }
}

JsonLine JsonLine::continuing(const std::string& object) {
  if (!is_object_text(object))
    throw std::invalid_argument("a metrics row that is not one JSON object: " +
                                json_quote(object.substr(0, 80)));
  JsonLine line;  // (an empty object's text, spaces and all, gives an empty line)
  if (!json_parse(object, "metrics row").members.empty())
    line.body_ = object.substr(0, object.size() - 1);
  return line;
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

MetricsWriter::MetricsWriter(const std::string& path, bool fresh) : path_(path) {
  // (never opens a FIFO or a directory, never appends to a file that is not JSON lines)
  output_file_prepare(path, "metrics file", OutputContent::kMetrics);
  const std::string who = "metrics file '" + path + "'";
  fd_ = open_locked(false);
  struct stat st;
  if (::fstat(fd_, &st) != 0) st.st_size = 0;
  // A new run beside an earlier run's rows: those are kept under another name (renamed while
  // locked, so never from under a job still writing them) and the file starts empty.
  if (fresh && st.st_size > 0) {
    try {
      keep_aside();
    } catch (...) {  // (a constructor that throws runs no destructor)
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      throw;
    }
    if (::fstat(fd_, &st) != 0) st.st_size = 0;
  }
  // Drop an incomplete last line (no newline at the end): the tail of a cut-short write.
  if (st.st_size > 0) {
    const off_t size = st.st_size;
    char last = '\n';
    if (::pread(fd_, &last, 1, size - 1) == 1 && last != '\n') {
      off_t keep = 0;
      char buf[4096];
      for (off_t end = size; end > 0 && keep == 0;) {
        const off_t start = end > off_t(sizeof(buf)) ? end - off_t(sizeof(buf)) : 0;
        const ssize_t n = ::pread(fd_, buf, size_t(end - start), start);
        if (n <= 0) break;
        for (ssize_t k = n - 1; k >= 0; --k)
          if (buf[k] == '\n') {
            keep = start + k + 1;
            break;
          }
        end = start;
      }
      if (::ftruncate(fd_, keep) != 0) {
        const std::string err = std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
        throw std::runtime_error(who + ": cannot drop its incomplete last line: " + err);
      }
      log_warning(who + ": dropped an incomplete last line of " + std::to_string(size - keep) +
                  " bytes (a write cut short before)");
    }
  }
}

int MetricsWriter::open_locked(bool create_new) const {
  const std::string who = "metrics file '" + path_ + "'";
  const int fd = ::open(
      path_.c_str(),
      O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | (create_new ? O_EXCL : 0), 0644);
  if (fd < 0)
    throw std::runtime_error(who + ": cannot open for appending: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(who + " is not a regular file");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(who + (err == EWOULDBLOCK
                                        ? " is being written by another job; two jobs appending "
                                          "to one file interleave their lines: give this one "
                                          "another log.metrics (or log.dir)"
                                        : ": cannot lock: " + std::string(std::strerror(err))));
  }
  return fd;
}

void MetricsWriter::keep_aside() {
  kept_as_ = file_keep_numbered(path_);
  if (kept_as_.empty())
    throw std::runtime_error("metrics file '" + path_ +
                             "' holds an earlier run's rows and could not be renamed aside; "
                             "move it, or give this run another log.metrics");
  // The new, empty file, locked as the first was (this process still holds the old one's lock:
  // the renamed file, which no other job opens by this path).
  const int old = fd_;
  fd_ = -1;
  try {
    fd_ = open_locked(true);
  } catch (const std::exception& e) {
    ::close(old);
    throw std::runtime_error(std::string(e.what()) + " (starting it again after keeping the " +
                             "earlier rows aside as " + kept_as_ + ")");
  }
  ::close(old);
}

bool MetricsWriter::renew() {
  const int before = fd_;
  fd_ = file_relink_if_removed(fd_, path_, [&] { return open_locked(false); });
  return fd_ != before;
}

std::string MetricsWriter::last_row_run() {
  struct stat st;
  if (::fstat(fd_, &st) != 0 || st.st_size == 0) return "";
  // The last line (the file ends with a newline: see the constructor), read from its tail.
  const off_t size = st.st_size;
  std::string tail(size_t(std::min<off_t>(size, off_t(1) << 16)), '\0');
  if (::pread(fd_, tail.data(), tail.size(), size - off_t(tail.size())) != ssize_t(tail.size()))
    return "";
  tail.pop_back();  // its newline
  const size_t nl = tail.rfind('\n');
  if (nl == std::string::npos && off_t(tail.size() + 1) < size) return "";  // a longer line
  try {
    const JsonValue row = json_parse(nl == std::string::npos ? tail : tail.substr(nl + 1), path_);
    const JsonValue* run = row.find("run");
    return run && run->type == JsonValue::Type::kString ? run->text : "";
  } catch (const std::exception&) {
    return "";  // (not a row of this version: nothing to tell)
  }
}

MetricsWriter::~MetricsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

int64_t MetricsWriter::drop_rows_after(int64_t step) {
  struct stat st;
  if (::fstat(fd_, &st) != 0 || st.st_size == 0) return 0;
  const off_t size = st.st_size;  // (the last byte ends the last line: see the constructor)
  auto read_failed = [&] {
    return std::runtime_error("metrics file '" + path_ + "': read failed: " + std::strerror(errno));
  };
  // The offset of the last newline before `before`, or -1: read backwards in 64 KiB blocks.
  std::vector<char> block(size_t(1) << 16);
  off_t block_at = 0, block_end = 0;  // the bytes of block hold [block_at, block_end)
  auto newline_before = [&](off_t before) -> off_t {
    for (off_t pos = before - 1; pos >= 0;) {
      if (pos < block_at || pos >= block_end) {
        block_end = pos + 1;
        block_at = std::max<off_t>(0, block_end - off_t(block.size()));
        if (::pread(fd_, block.data(), size_t(block_end - block_at), block_at) !=
            ssize_t(block_end - block_at))
          throw read_failed();
      }
      const void* nl = ::memrchr(block.data(), '\n', size_t(pos - block_at + 1));
      if (nl) return block_at + off_t(static_cast<const char*>(nl) - block.data());
      pos = block_at - 1;
    }
    return -1;
  };
  // The step of the row that starts at `at`; -1 for a line that is not a step's row.
  auto step_at = [&](off_t at) -> long long {
    static const char kPrefix[] = "{\"step\":";
    char head[48] = {0};
    const ssize_t n = ::pread(fd_, head, sizeof(head) - 1, at);
    if (n < 0) throw read_failed();
    if (size_t(n) < sizeof(kPrefix) - 1 || std::memcmp(head, kPrefix, sizeof(kPrefix) - 1) != 0)
      return -1;
    return std::strtoll(head + sizeof(kPrefix) - 1, nullptr, 10);
  };
  // Lines last first; the removal stops at a row of a step <= `step` (or a line that is not a
  // step's row): it and all before it stay.
  off_t keep = size;
  int64_t dropped = 0;
  while (keep > 0) {
    const off_t start = newline_before(keep - 1) + 1;  // the start of the line ending at keep
    if (step_at(start) <= step) break;
    ++dropped;
    keep = start;
  }
  if (dropped > 0 && ::ftruncate(fd_, keep) != 0)
    throw std::runtime_error("metrics file '" + path_ + "': cannot drop the rows after step " +
                             std::to_string(step) + ": " + std::strerror(errno));
  return dropped;
}

void MetricsWriter::write(const JsonLine& line) {
  const std::string text = line.str() + "\n";
  const char* p = text.data();
  size_t n = text.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw std::runtime_error("metrics file '" + path_ + "': write failed (" +
                               std::strerror(errno) + "; disk full?)");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace longnet
