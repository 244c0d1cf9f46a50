// Greedy and nucleus sampling (see sampling.h), in float32.
#include "longnet/core/sampling.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

namespace longnet {

void sampling_options_check(const SamplingOptions& o) {
  if (!(o.temperature >= 0.0) || o.temperature > 1e6)
    throw std::invalid_argument("sampling: temperature " + std::to_string(o.temperature) +
                                " must be in [0, 1e6] (0 = greedy)");
  if (o.temperature > 0.0 && o.temperature < 1e-4) {
    char v[32];
    std::snprintf(v, sizeof(v), "%g", o.temperature);
    throw std::invalid_argument(std::string("sampling: temperature ") + v +
                                " is below 1e-4, where logits / temperature overflow float32; use "
                                "0 (greedy) for the most likely token, or at least 1e-4");
  }
  if (o.top_k < 0)
    throw std::invalid_argument("sampling: top_k " + std::to_string(o.top_k) +
                                " must be >= 0 (0 = no limit)");
  if (!(o.top_p > 0.0 && o.top_p <= 1.0))
    throw std::invalid_argument("sampling: top_p " + std::to_string(o.top_p) +
                                " must be in (0, 1] (1 = no limit)");
}

at::Tensor sample_next(const at::Tensor& logits_in, const SamplingOptions& o) {
  TORCH_CHECK(logits_in.dim() == 2 && logits_in.is_floating_point(),
              "sample_next: logits must be (batch, vocab) floating; got ", logits_in.sizes(), " ",
              logits_in.scalar_type());
  sampling_options_check(o);
  at::NoGradGuard no_grad;
  if (o.greedy || o.temperature == 0.0) return logits_in.argmax(-1);
  // Shifted by each row's largest logit before the temperature divides them: finite logits
  // near float32's largest would otherwise reach inf under a temperature below 1 (and NaN in
  // the softmax). The shift changes no probability.
  auto logits = logits_in.to(at::kFloat);  // (B, V)
  logits = (logits - std::get<0>(logits.max(-1, true))) / o.temperature;
  const auto neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t V = logits.size(1);
  if (o.top_k > 0 && o.top_k < V) {
    auto kth = std::get<0>(logits.topk(o.top_k, -1)).select(-1, o.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (o.top_p < 1.0) {
    auto [sorted, order] = logits.sort(-1, /*descending=*/true);
    auto cum = sorted.softmax(-1).cumsum(-1);
    // Drop a token when the tokens before it already reach top_p (the first always stays).
    auto drop = (cum - sorted.softmax(-1)) >= o.top_p;
    // The first by construction, also where top_p is below float32's smallest number (it
    // compares as 0) or rounding leaves cum - p a hair above 0.
    drop.select(-1, 0).fill_(false);
    sorted = sorted.masked_fill(drop, neg_inf);
    logits = at::full_like(logits, neg_inf).scatter(-1, order, sorted);
  }
  return at::multinomial(logits.softmax(-1), 1).squeeze(-1);
}

}  // namespace longnet
