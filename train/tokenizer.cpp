// tokenizer_open: parses a KIND[:PATH] spec and hands it to the kind's constructor (see
// tokenizer.h), so that every caller reports a bad spec the same way.
#include "longnet/train/tokenizer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "longnet/train/tokenizer_kinds.h"

namespace longnet {

namespace {
constexpr const char* kSpecHelp =
    "use bytes, bytes:eot, tiktoken:PATH (a .tiktoken ranks file such as "
    "cl100k_base.tiktoken) or sentencepiece:PATH (a .model file)";
}

std::string tokenizer_file_read(const std::string& path, const std::string& what) {
  const std::string who = what + " '" + path + "'";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(who + (errno == ENOENT
                                        ? " does not exist"
                                        : ": cannot open: " + std::string(std::strerror(errno))));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(who + " is not a regular file");
  }
  constexpr off_t kMaxBytes = off_t{1} << 30;
  if (st.st_size > kMaxBytes) {
    ::close(fd);
    throw std::runtime_error(who + " has " + std::to_string(st.st_size) +
                             " bytes, more than a tokenizer file can have (1 GiB); is it the "
                             "right file?");
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::read(fd, &data[done], data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(who + ": read failed" +
                               (n < 0 ? ": " + std::string(std::strerror(err)) : " (file shrank)"));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return data;
}

bool tokenizer_kind_available(const std::string& kind) {
  if (kind == "bytes") return true;
  if (kind == "tiktoken") return tiktoken_available();
  if (kind == "sentencepiece") return sentencepiece_available();
  return false;
}

std::unique_ptr<Tokenizer> tokenizer_open(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? spec.substr(colon + 1) : "";
  if (kind == "bytes") {
    if (!has_arg) return bytes_tokenizer_open(false);
    if (arg == "eot") return bytes_tokenizer_open(true);
    throw std::invalid_argument("tokenizer '" + spec +
                                "': the bytes tokenizer takes no file; use bytes (vocabulary "
                                "256) or bytes:eot (vocabulary 257, end-of-text 256)");
  }
  if (kind == "tiktoken" || kind == "sentencepiece") {
    if (arg.empty())
      throw std::invalid_argument(
          "tokenizer '" + spec + "': " + kind + " needs a file: " + kind +
          (kind == "tiktoken" ? ":PATH/cl100k_base.tiktoken" : ":PATH/tokenizer.model"));
    return kind == "tiktoken" ? tiktoken_open(arg) : sentencepiece_open(arg);
  }
  throw std::invalid_argument("unknown tokenizer '" + spec + "' (kind '" + kind + "'); " +
                              kSpecHelp);
}

}  // namespace longnet
