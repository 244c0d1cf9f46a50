// Two helpers of `data build` (train/dataset_build.h): the corpus fingerprint that tells whether
// the corpus is the one an interrupted build read, and the progress line on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "longnet/train/corpus.h"
#include "longnet/train/sha256.h"

namespace longnet {

// The path made absolute (realpath), or as given when it cannot be.
std::string path_absolute(const std::string& path);

// SHA-256 over the corpus files' paths, sizes and modification times, of files [0, i] for
// growing i: a cheap test that the corpus (up to where a build stopped) is the one it read.
class CorpusFingerprint {
 public:
  // The hash starts with the version of how files are read and cut into units (pieces, formats
  // by extension): a build interrupted under another version does not resume into this one's.
  // Each file counts by its absolute path, size and modification time; with `status_times`
  // also by its status-change time, which no ordinary user can set back: the resume check of an
  // interrupted build, so that a file rewritten with its size and time restored is not mixed
  // in. (A finished dataset is recognised without it: a chmod or a new hard link changes it.)
  explicit CorpusFingerprint(const std::vector<CorpusFile>& files, bool status_times)
      : files_(files), status_times_(status_times) {
    h_.update(status_times ? "longnet corpus units 3 ctime\n" : "longnet corpus units 3\n");
  }
  // Of files [0, min(i, n - 1)]; i must not decrease between calls.
  std::string prefix(int64_t i);

 private:
  const std::vector<CorpusFile>& files_;
  bool status_times_;
  Sha256 h_;
  int64_t next_ = 0;
};

// "data build: 45.2 of 120.0 MB (37%), 12.3 MB/s, 9.10M tokens, 3 shard(s), ETA 0:00:06": a line
// rewritten in place on a terminal, one every 10 s otherwise; nothing when off.
class Progress {
 public:
  Progress(bool on, uint64_t total_bytes);
  // done_bytes: of the corpus files (on disk), text_bytes: tokenized so far.
  void update(uint64_t done_bytes, uint64_t text_bytes, int64_t tokens, int64_t shards,
              bool force = false);
  void end();

 private:
  bool on_, tty_ = false, shown_ = false;
  uint64_t total_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace longnet
