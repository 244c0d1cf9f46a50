// Byte-level training data: `longnet data build` turns any directory of text or code into one
// token file (vocabulary 256, one byte per token, no download), read back through mmap, and a
// sampler that gives every rank of a data x sequence parallel grid its part of each batch as a
// pure function of (seed, position), so that resuming from a checkpoint is exact.
//
// File layout (integers little-endian):
//   offset  0  char[8]  "LNTOKENS"
//           8  u32      format version (1)
//          12  u32      vocabulary size (256)
//          16  u32      bytes per token (1)
//          20  u32      header size (64)
//          24  u64      training tokens T
//          32  u64      validation tokens V
//          40  zeros up to 64
//          64  T training tokens, then V validation tokens
//
// Sampling (one micro-step consumes data_parallel * batch_size sequences of the whole job):
//   global sample s = position + dp_index * batch_size + b,   b in [0, batch_size)
//   start(s)        = hash(seed, s) mod (T - seq_len)
//   sequence-parallel rank t of the group holds tokens [start + t*L, start + (t+1)*L),
//   L = seq_len / sequence_parallel, as inputs; targets are the same range one token later:
//
//     tokens:   start ............................................ start+seq_len
//     inputs:   [ sp 0: L tokens ][ sp 1: L tokens ] ... [ sp P-1 ]
//     targets:   [ sp 0          ][ sp 1          ] ... [ sp P-1 ]+1   (shifted by one)
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>
#include <vector>

namespace longnet {

struct DataBuildSummary {
  int64_t text_files = 0;     // files taken
  int64_t binary_files = 0;   // skipped: a NUL byte in the first 8 KiB
  int64_t large_files = 0;    // skipped: larger than 16 MiB
  int64_t other_skipped = 0;  // skipped: empty or unreadable
  int64_t train_files = 0, val_files = 0;
  int64_t train_tokens = 0, val_tokens = 0;
};

// Builds a token file from every text-like regular file under src_dir (sorted walk, symlinks
// skipped), files joined by '\n'. A file goes to validation when a hash of its relative path
// falls below val_fraction (in [0, 1)); with two or more files, at least one goes to each
// split. Writes out_path + ".tmp", then renames. Prints a one-line summary. Throws
// std::runtime_error when src_dir is missing, not a directory, or has no text files.
DataBuildSummary data_build(const std::string& src_dir, const std::string& out_path,
                            double val_fraction = 0.005);

// A token file mapped read-only. Throws std::runtime_error naming the file when it is missing,
// empty, not a token file, of another format version, or truncated.
class TokenFile {
 public:
  explicit TokenFile(const std::string& path);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  const std::string& path() const { return path_; }
  c10::ArrayRef<uint8_t> train() const { return train_; }
  c10::ArrayRef<uint8_t> val() const { return val_; }
  static constexpr int64_t kVocabSize = 256;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  c10::ArrayRef<uint8_t> train_, val_;
};

struct SamplerOptions {
  int64_t seq_len = 2048;  // global sequence length
  int64_t batch_size = 1;  // sequences per data-parallel rank per micro-step
  int64_t dp_size = 1, dp_index = 0;
  int64_t sp_size = 1, sp_index = 0;
  uint64_t seed = 0;
  int64_t val_batches = 1;  // val_batch(i), i < val_batches, spread evenly over validation
};

struct TokenBatch {
  at::Tensor inputs;   // (batch_size, seq_len / sp_size) int64, CPU
  at::Tensor targets;  // (batch_size, seq_len / sp_size) int64, CPU: inputs one token later
};

// Deterministic batches for one rank. The file must outlive the sampler. Throws
// std::invalid_argument for a bad grid, std::runtime_error when a split is shorter than one
// sequence.
class TokenSampler {
 public:
  TokenSampler(const TokenFile& file, const SamplerOptions& options, int64_t samples_consumed = 0);

  // This rank's next training batch; advances position() by dp_size * batch_size.
  TokenBatch next_batch();
  // Global count of training sequences drawn so far (the same on every rank).
  int64_t position() const { return position_; }
  void set_position(int64_t samples_consumed);

  // Validation batch i in [0, val_batches): the same windows on every call.
  TokenBatch val_batch(int64_t i) const;

  // Start of global training sample s in the training split (for tests and tools).
  int64_t train_start(int64_t sample) const;

 private:
  TokenBatch slice(c10::ArrayRef<uint8_t> split, const std::vector<int64_t>& starts) const;
  const TokenFile& file_;
  SamplerOptions opt_;
  int64_t position_ = 0;
};

}  // namespace longnet
