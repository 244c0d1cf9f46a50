// The corpus fingerprint and the progress line of `data build` (see build_progress.h).
#include "longnet/train/build_progress.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "longnet/core/text.h"

namespace longnet {

std::string path_absolute(const std::string& p) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (!r) return p;
  std::string out(r);
  std::free(r);
  return out;
}

std::string CorpusFingerprint::prefix(int64_t i) {
  i = std::min<int64_t>(i, static_cast<int64_t>(files_.size()) - 1);
  if (i < next_ - 1) throw std::logic_error("CorpusFingerprint: prefixes must not shrink");
  for (; next_ <= i; ++next_) {
    const CorpusFile& f = files_[static_cast<size_t>(next_)];
    struct stat st {};
    ::stat(f.path.c_str(), &st);
    auto time = [](const struct timespec& t) {
      return std::to_string(static_cast<long long>(t.tv_sec)) + "." +
             std::to_string(static_cast<long long>(t.tv_nsec));
    };
    h_.update(path_absolute(f.path) + "\t" + std::to_string(f.bytes) + "\t" + time(st.st_mtim) +
              (status_times_ ? "\t" + time(st.st_ctim) : std::string()) + "\n");
  }
  Sha256 copy = h_;
  return copy.hex_digest();
}

Progress::Progress(bool on, uint64_t total_bytes) : on_(on), total_(total_bytes) {
  tty_ = ::isatty(2) == 1;
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::update(uint64_t done_bytes, uint64_t text_bytes, int64_t tokens, int64_t shards,
                      bool force) {
  if (!on_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (!force && since < (tty_ ? 0.5 : 10.0)) return;
  last_ = now;
  const double t = std::chrono::duration<double>(now - start_).count();
  const double rate = t > 0 ? text_bytes / t / 1e6 : 0;
  const double frac = total_ ? std::min(1.0, double(done_bytes) / double(total_)) : 1.0;
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "data build: %.1f of %.1f MB (%.0f%%), %.1f MB/s, %.2fM tokens, %lld shard(s), "
                "ETA %s",
                done_bytes / 1e6, total_ / 1e6, 100 * frac, rate, tokens / 1e6,
                static_cast<long long>(shards),
                frac > 0 ? hms(t * (1 - frac) / frac).c_str() : "?");
  std::fprintf(stderr, tty_ ? "\r%s\033[K" : "%s\n", buf);
  std::fflush(stderr);
  shown_ = true;
}

void Progress::end() {
  if (on_ && shown_ && tty_) std::fprintf(stderr, "\n");
}

}  // namespace longnet
