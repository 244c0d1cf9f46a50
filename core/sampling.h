// Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p
// (nucleus), on the logits' device with ATen's generator (at::manual_seed sets it).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace longnet {

struct SamplingOptions {
  bool greedy = false;       // argmax (also when temperature is 0)
  double temperature = 1.0;  // >= 0
  int64_t top_k = 0;         // keep the k most likely tokens; 0: all
  double top_p = 1.0;        // keep the smallest set whose probability reaches p; in (0, 1]
};

// Throws std::invalid_argument naming the option and its allowed range.
void sampling_options_check(const SamplingOptions& o);

// logits: (B, V), any floating dtype. Returns (B,) int64 on the logits' device.
at::Tensor sample_next(const at::Tensor& logits, const SamplingOptions& o);

}  // namespace longnet
