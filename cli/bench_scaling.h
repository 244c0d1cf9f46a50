// `longnet bench scaling`: the paper's Figure 5. Forward time of dilated attention (and dense
// SDPA while it fits) at a fixed total token count while the sequence length N grows. Every GPU
// holds total / P tokens: while a sequence fits in one GPU's share the ranks are data-parallel;
// beyond that a sequence is split over N / (total / P) sequence-parallel ranks.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

struct BenchScalingOptions {
  int64_t total_tokens = int64_t(1) << 25;
  std::vector<int64_t> seq_lens;  // empty: powers of two from 2^13 to total_tokens
  int64_t heads = 4, head_dim = 8;
  c10::ScalarType dtype = c10::kHalf;
  // "reference": segments {8192, 16384, 32768} clipped to N with rate 2^(w/8192 - 1) (the
  // reference library's benchmark); "paper": segments {2048, tokens per GPU, N} with rates
  // {1, (tokens per GPU) / 2048, N / 2048}. Repeated segments after clipping are dropped.
  std::string schedule = "reference";
  bool dilated = true, dense = true;
  int64_t dense_max_len = int64_t(1) << 17;
  double dense_time_cap_s = 10;  // stop timing dense once one forward takes longer
  int warmup = 2, repeats = 5;
  std::string json;
  std::string command;
  c10::DeviceType device = c10::kCUDA;
  EngineOptions engine;
};

int bench_scaling(const BenchScalingOptions& o);

}  // namespace longnet
