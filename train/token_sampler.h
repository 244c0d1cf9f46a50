// The grid sampler: gives every rank of a data x sequence parallel grid its part of each batch
// as a pure function of (seed, position), over a TokenDataset (train/token_dataset.h), so that
// resuming from a checkpoint is exact and each rank reads only its own tokens.
//
// Sampling (one micro-step consumes data_parallel * batch_size sequences of the whole job):
//   global sample s = position + dp_index * batch_size + b,   b in [0, batch_size)
//   start(s)        = hash(seed, s) mod (T - seq_len),  T = tokens of the training split (all of
//                     its shards, concatenated: a sequence may cross a shard boundary)
//   sequence-parallel rank t of the group holds tokens [start + t*L, start + (t+1)*L),
//   L = seq_len / sequence_parallel, as inputs; targets are the same range one token later, so
//   the rank reads L + 1 tokens:
//
//     tokens:   start ............................................ start+seq_len
//     inputs:   [ sp 0: L tokens ][ sp 1: L tokens ] ... [ sp P-1 ]
//     targets:   [ sp 0          ][ sp 1          ] ... [ sp P-1 ]+1   (shifted by one)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "longnet/train/token_dataset.h"

namespace longnet {

struct SamplerOptions {
  int64_t seq_len = 2048;  // global sequence length
  int64_t batch_size = 1;  // sequences per data-parallel rank per micro-step
  int64_t dp_size = 1, dp_index = 0;
  int64_t sp_size = 1, sp_index = 0;
  uint64_t seed = 0;
  int64_t val_batches = 1;  // val_batch(i), i < val_batches, spread evenly over validation;
                            // 0: no validation (the split may be empty)
};

struct TokenBatch {
  at::Tensor inputs;   // (batch_size, seq_len / sp_size) int64, CPU
  at::Tensor targets;  // (batch_size, seq_len / sp_size) int64, CPU: inputs one token later
};

// Deterministic batches for one rank. The dataset must outlive the sampler. Throws
// std::invalid_argument for a bad grid, std::runtime_error when a split is shorter than one
// sequence (and, from the dataset, for a shard that cannot be read).
class TokenSampler {
 public:
  TokenSampler(const TokenDataset& data, const SamplerOptions& options,
               int64_t samples_consumed = 0);

  // This rank's next training batch; advances position() by dp_size * batch_size.
  TokenBatch next_batch();
  // Global count of training sequences drawn so far (the same on every rank).
  int64_t position() const { return position_; }
  void set_position(int64_t samples_consumed);

  // Validation batch i in [0, val_batches()): the same windows on every call.
  TokenBatch val_batch(int64_t i) const;
  // The validation batches an evaluation reads: options.val_batches, or fewer when more windows
  // than fit apart in the validation split were asked for (they would score the same tokens
  // again and make each evaluation as long as it likes); at least 1.
  int64_t val_batches() const { return opt_.val_batches; }

  // Start of global training sample s in the training split (for tests and tools).
  int64_t train_start(int64_t sample) const;
  // Start of the b-th sequence of validation batch i for this rank's data-parallel index.
  int64_t val_start(int64_t i, int64_t b) const;

 private:
  TokenBatch slice(DataSplit split, const std::vector<int64_t>& starts) const;
  const TokenDataset& data_;
  SamplerOptions opt_;
  int64_t position_ = 0;
};

}  // namespace longnet
