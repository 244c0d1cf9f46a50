// Writing one shard of a dataset (train/shard_header.h) atomically: tokens go to NAME.tmp with a
// running CRC-32, and only a finished shard (header written, data synced to disk) is renamed to
// NAME, so no half-written shard ever carries a final name. A writer destroyed unfinished (an
// error, an exception) removes its temporary file. Also the check of an existing shard against
// its manifest entry, which a resumed build runs on the shards it keeps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longnet/core/file_util.h"
#include "longnet/train/dataset_manifest.h"

namespace longnet {

// "train_000012.bin" / "val_000000.bin".
std::string shard_file_name(bool validation, int64_t index);

class ShardWriter {
 public:
  // Creates DIR/NAME.tmp for shard `index` of a split. token_bytes is 2 or 4.
  ShardWriter(const std::string& dir, bool validation, int64_t index, int64_t token_bytes,
              int64_t vocab_size);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends n ids (each below the vocabulary). Throws std::runtime_error naming the file on a
  // write error.
  void append(const uint32_t* ids, size_t n);
  int64_t tokens() const { return tokens_; }
  const std::string& tmp_path() const { return tmp_; }

  // Writes the header, syncs, closes and renames to the final name. Returns the manifest entry.
  ManifestShard finish(const CorpusPosition& end);
  // Writes the buffered tokens to the temporary file (append buffers up to 4 MiB).
  void flush();

 private:
  std::string dir_, name_, tmp_;
  TempFileOnSignal on_signal_;  // the .tmp removed if a signal ends the build
  bool validation_;
  int64_t index_, token_bytes_, vocab_size_, tokens_ = 0;
  int fd_ = -1;
  uint32_t crc_ = 0;
  std::vector<unsigned char> buf_;
};

// Whether DIR/shard.file is the shard the manifest entry describes (regular file, size, header
// with the same tokens, width, vocabulary, split and index, CRC-32). "" when it is, else why not.
std::string shard_verify(const std::string& dir, const ManifestShard& shard, bool validation,
                         int64_t index, int64_t token_bytes, int64_t vocab_size);

}  // namespace longnet
