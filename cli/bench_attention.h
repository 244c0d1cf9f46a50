// `longnet bench attention`: times dilated attention forward and forward+backward (single GPU,
// or sequence-parallel under mpirun with --sp P) beside LibTorch's dense causal attention
// (cuDNN) measured in the same run, and writes the rows to a JSON results file.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

struct BenchAttentionOptions {
  std::vector<int64_t> seq_lens{32768, 1048576};
  int64_t tokens = 1 << 20;  // B * N (global), per data-parallel replica
  int64_t heads = 12;
  std::vector<int64_t> head_dims{64};
  std::vector<int64_t> segments{2048, 4096, 8192, 16384, 32768};
  std::vector<int64_t> rates{1, 2, 4, 6, 12};
  // Figure-5 style schedule: segments {first, L, N} with rates {1, L/first, N/first}; overrides
  // segments/rates when > 0.
  int64_t weak_scaling_first = 0;
  bool causal = true;
  c10::ScalarType dtype = c10::kBFloat16;
  int64_t sp = 1;
  int warmup = 3, repeats = 10;
  bool dense = true;  // also time dense SDPA at each N up to dense_max_len
  int64_t dense_max_len = 32768;
  bool backward = true;
  bool breakdown = false;  // also time each branch alone (single GPU)
  std::string json;        // results file ("" = none)
  std::string command;     // the command line, recorded in the results
  c10::DeviceType device = c10::kCUDA;
  EngineOptions engine;
};

int bench_attention(const BenchAttentionOptions& o);

}  // namespace longnet
