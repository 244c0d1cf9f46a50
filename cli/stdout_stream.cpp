// Writing to stdout that stops cleanly at a closed pipe (see stdout_stream.h).
#include "longnet/cli/stdout_stream.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace longnet {

namespace {
bool closed = false;
}  // namespace

bool stdout_was_closed() {
  if (closed) return true;
  // Writes through std::cout leave no errno to read afterwards: ask the pipe (or socket)
  // itself, which reports an error to poll once its reader is gone.
  struct stat st;
  if (::fstat(STDOUT_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
    return false;
  pollfd p{STDOUT_FILENO, POLLOUT, 0};
  return closed = ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
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
