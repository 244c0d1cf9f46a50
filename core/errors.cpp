// Rank-aware error reporting for all of longnet (see errors.h).
#include "longnet/core/errors.h"

#include <atomic>
#include <sstream>

namespace longnet {
namespace {
std::atomic<int> g_rank{-1};
}

void log_set_rank(int rank) {
  g_rank = rank;
}
int log_rank() {
  return g_rank;
}

std::string log_prefix() {
  int r = g_rank;
  return r < 0 ? std::string() : "[rank " + std::to_string(r) + "] ";
}

bool says_out_of_memory(const std::string& message) {
  return message.find("can't allocate memory") != std::string::npos ||
         message.find("not enough memory") != std::string::npos ||
         message.find("out of memory") != std::string::npos;
}

void throw_library_error(const char* library, const char* call, const std::string& detail,
                         const char* file, int line) {
  std::ostringstream s;
  s << library << " call " << call << " failed: " << detail << " (" << file << ":" << line;
  if (g_rank >= 0) s << ", rank " << g_rank;
  s << ")";
  throw std::runtime_error(s.str());
}

}  // namespace longnet
