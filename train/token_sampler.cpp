// The grid sampler (see token_sampler.h).
#include "longnet/train/token_sampler.h"

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>

namespace longnet {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, n) from 64 random bits (multiply-high; bias at most n / 2^64).
int64_t below(uint64_t bits, int64_t n) {
  return static_cast<int64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(n)) >>
                              64);
}

}  // namespace

TokenSampler::TokenSampler(const TokenDataset& data, const SamplerOptions& options,
                           int64_t samples_consumed)
    : data_(data), opt_(options) {
  const auto& o = opt_;
  if (o.seq_len < 1 || o.batch_size < 1 || o.val_batches < 0)
    throw std::invalid_argument("TokenSampler: seq_len = " + std::to_string(o.seq_len) +
                                " and batch_size = " + std::to_string(o.batch_size) +
                                " must be >= 1, val_batches = " + std::to_string(o.val_batches) +
                                " >= 0");
  if (o.dp_size < 1 || o.dp_index < 0 || o.dp_index >= o.dp_size || o.sp_size < 1 ||
      o.sp_index < 0 || o.sp_index >= o.sp_size)
    throw std::invalid_argument("TokenSampler: rank (dp " + std::to_string(o.dp_index) + " of " +
                                std::to_string(o.dp_size) + ", sp " + std::to_string(o.sp_index) +
                                " of " + std::to_string(o.sp_size) + ") is outside the grid");
  if (o.seq_len % o.sp_size != 0)
    throw std::invalid_argument("TokenSampler: seq_len " + std::to_string(o.seq_len) +
                                " is not divisible by sequence_parallel " +
                                std::to_string(o.sp_size));
  for (DataSplit s : {DataSplit::kTrain, DataSplit::kVal}) {
    if (s == DataSplit::kVal && o.val_batches == 0) continue;  // no validation
    const int64_t n = data.tokens(s);
    if (n < o.seq_len + 1)
      throw std::runtime_error("dataset '" + data.path() + "': the " + split_name(s) +
                               " split has " + std::to_string(n) +
                               " tokens, shorter than one sequence (data.seq_len + 1 = " +
                               std::to_string(o.seq_len + 1) +
                               " tokens): use a smaller data.seq_len or a larger corpus");
  }
  // Validation windows are spread evenly over the split; more of them than fit apart would score
  // the same tokens again (and make each evaluation as long as it likes): capped.
  const int64_t apart = (data.tokens(DataSplit::kVal) - 1) / o.seq_len;
  const int64_t per_batch = o.dp_size * o.batch_size;
  if (o.val_batches > apart / per_batch)
    opt_.val_batches = std::max<int64_t>(o.val_batches > 0 ? 1 : 0, apart / per_batch);
  set_position(samples_consumed);
}

void TokenSampler::set_position(int64_t samples_consumed) {
  if (samples_consumed < 0)
    throw std::invalid_argument("TokenSampler: position " + std::to_string(samples_consumed) +
                                " must be >= 0");
  position_ = samples_consumed;
}

int64_t TokenSampler::train_start(int64_t sample) const {
  const int64_t starts = data_.tokens(DataSplit::kTrain) - opt_.seq_len;
  return below(splitmix64(splitmix64(opt_.seed) + static_cast<uint64_t>(sample)), starts);
}

int64_t TokenSampler::val_start(int64_t i, int64_t b) const {
  // Windows j = 0..total-1 spread evenly from the first to the last possible start.
  const int64_t total = opt_.val_batches * opt_.dp_size * opt_.batch_size;
  const int64_t last = data_.tokens(DataSplit::kVal) - opt_.seq_len - 1;
  const int64_t j = (i * opt_.dp_size + opt_.dp_index) * opt_.batch_size + b;
  return total == 1 ? 0 : static_cast<int64_t>(static_cast<__int128>(j) * last / (total - 1));
}

TokenBatch TokenSampler::slice(DataSplit split, const std::vector<int64_t>& starts) const {
  const int64_t L = opt_.seq_len / opt_.sp_size, B = static_cast<int64_t>(starts.size());
  auto inputs = at::empty({B, L}, at::kLong), targets = at::empty({B, L}, at::kLong);
  std::vector<int64_t> row(static_cast<size_t>(L + 1));
  int64_t* x = inputs.data_ptr<int64_t>();
  int64_t* y = targets.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    // In range: start + seq_len < split size.
    data_.read(split, starts[b] + opt_.sp_index * L, L + 1, row.data());
    std::copy(row.begin(), row.end() - 1, x + b * L);
    std::copy(row.begin() + 1, row.end(), y + b * L);
  }
  return {inputs, targets};
}

TokenBatch TokenSampler::next_batch() {
  std::vector<int64_t> starts(opt_.batch_size);
  const int64_t first = position_ + opt_.dp_index * opt_.batch_size;
  for (int64_t b = 0; b < opt_.batch_size; ++b) starts[b] = train_start(first + b);
  position_ += opt_.dp_size * opt_.batch_size;
  return slice(DataSplit::kTrain, starts);
}

TokenBatch TokenSampler::val_batch(int64_t i) const {
  if (i < 0 || i >= opt_.val_batches)
    throw std::invalid_argument("TokenSampler::val_batch: " + std::to_string(i) +
                                " is outside [0, " + std::to_string(opt_.val_batches) + ")");
  std::vector<int64_t> starts(opt_.batch_size);
  for (int64_t b = 0; b < opt_.batch_size; ++b) starts[b] = val_start(i, b);
  return slice(DataSplit::kVal, starts);
}

}  // namespace longnet
