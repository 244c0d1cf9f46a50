// Writing to stdout that stops cleanly at a closed pipe (see stdout_stream.h).
#include "longnet/cli/stdout_stream.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace longnet {

namespace {
bool closed = false;
}  // namespace

bool stdout_was_closed() {
  return closed;
}

bool stdout_write(const std::string& text) {
  errno = 0;
  if (std::ferror(stdout)) return false;  // an earlier write already failed
  const size_t n = std::fwrite(text.data(), 1, text.size(), stdout);
  if (std::fflush(stdout) == 0 && n == text.size()) return true;
  if (errno == EPIPE) return closed = true, false;
  throw std::runtime_error(std::string("writing stdout failed: ") +
                           (errno ? std::strerror(errno) : "short write"));
}

void stdout_closed_note(const std::string& command) {
  std::fprintf(stderr, "%s: stdout was closed; stopped\n", command.c_str());
}

}  // namespace longnet
