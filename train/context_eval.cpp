// Loss against context length (see context_eval.h).
#include "longnet/train/context_eval.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/functional/loss.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "longnet/core/autocast_scope.h"
#include "longnet/core/dtype_names.h"
#include "longnet/train/fault_injection.h"

namespace longnet {

std::vector<int64_t> context_eval_window_ends(const ContextEvalOptions& o, int64_t val_size) {
  if (o.context_lens.empty()) throw std::invalid_argument("eval: no context lengths given");
  if (o.windows < 1 || o.batch_size < 1)
    throw std::invalid_argument("eval: windows (" + std::to_string(o.windows) +
                                ") and batch size (" + std::to_string(o.batch_size) +
                                ") must be >= 1");
  const int64_t c_min = *std::min_element(o.context_lens.begin(), o.context_lens.end());
  const int64_t c_max = *std::max_element(o.context_lens.begin(), o.context_lens.end());
  if (c_min < 1) throw std::invalid_argument("eval: context lengths must be >= 1");
  if (o.score_tokens < 0 || o.score_tokens > c_min)
    throw std::invalid_argument("eval: score tokens " + std::to_string(o.score_tokens) +
                                " must lie in [1, " + std::to_string(c_min) +
                                "] (the smallest context length); 0 means " +
                                std::to_string(c_min));
  // The last input token e - 1 predicts token e, so e <= val_size - 1.
  if (val_size - 1 < c_max)
    throw std::invalid_argument(
        "eval: the validation split has " + std::to_string(val_size) +
        " tokens; the longest context " + std::to_string(c_max) + " needs at least " +
        std::to_string(c_max + 1) +
        ". Use shorter --context-lens, or build the data with a larger validation fraction");
  std::vector<int64_t> ends;
  const int64_t span = val_size - 1 - c_max;
  // Window j scores the T tokens up to its end; ends lie span / (windows - 1) apart at least
  // (rounded down), so windows that far apart never score a token twice.
  const int64_t T = o.score_tokens > 0 ? o.score_tokens : c_min;
  const int64_t most = 1 + span / T;
  if (o.windows > most)
    throw std::invalid_argument(
        "eval: --batches x --batch-size = " + std::to_string(o.windows) + " windows of " +
        std::to_string(T) + " scored tokens would score some tokens twice: their ends lie in " +
        std::to_string(c_max) + ".." + std::to_string(val_size - 1) +
        " of the validation split's " + std::to_string(val_size) +
        " tokens (after the longest context, " + std::to_string(c_max) + "), room for at most " +
        std::to_string(most) + " windows that do not overlap; use at most " + std::to_string(most) +
        " windows (fewer --batches or a smaller --batch-size), shorter --context-lens, or more "
        "validation data");
  for (int64_t j = 0; j < o.windows; ++j)
    ends.push_back(c_max + (o.windows == 1 ? span : span * j / (o.windows - 1)));
  return ends;
}

std::vector<ContextEvalRow> context_eval(LongNetLM& model, const ValidationTokens& data,
                                         ProcessGrid& grid, AttentionBackend& backend,
                                         const ContextEvalOptions& o,
                                         const ContextEvalRowDone& on_row,
                                         const ContextEvalStop& should_stop) {
  const auto ends = context_eval_window_ends(o, data.size);
  const int64_t T = o.score_tokens > 0
                        ? o.score_tokens
                        : *std::min_element(o.context_lens.begin(), o.context_lens.end());
  const int64_t P = grid.sequence_parallel, rank = grid.sp_index;
  at::NoGradGuard no_grad;
  std::vector<ContextEvalRow> rows;
  for (int64_t c : o.context_lens) {
    TORCH_CHECK(int64_t(rows.size()) != fault_injection().eval_fail_at_length,
                "eval: an injected failure at context length ", c, " (--debug-fail-at-length)");
    if (c % P != 0)
      throw std::invalid_argument(
          "eval: context length " + std::to_string(c) + " does not split over " +
          std::to_string(P) + " sequence-parallel ranks; use multiples of " + std::to_string(P));
    const int64_t L = c / P, first = c - T;  // this rank's tokens; the first scored position
    const int64_t lo = std::clamp<int64_t>(first - rank * L, 0, L);
    auto sums = at::zeros({2}, at::TensorOptions().dtype(at::kDouble).device(grid.device));
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t w0 = 0; w0 < ends.size(); w0 += size_t(o.batch_size)) {
      if (should_stop && should_stop()) return rows;
      const size_t n = std::min(ends.size() - w0, size_t(o.batch_size));
      std::vector<at::Tensor> windows;
      for (size_t j = 0; j < n; ++j)
        windows.push_back(data.read(ends[w0 + j] - c + rank * L, L + 1));
      auto tokens = at::stack(windows).to(grid.device);  // (n, L + 1)
      auto inputs = tokens.narrow(1, 0, L), targets = tokens.narrow(1, 1, L);
      at::Tensor logits;  // (n, L, V)
      {
        CudaAutocastScope autocast(o.bf16_autocast);
        logits = model->forward(inputs, backend);
      }
      if (lo < L) {
        auto scored = logits.narrow(1, lo, L - lo).reshape({-1, logits.size(-1)}).to(at::kFloat);
        auto loss = torch::nn::functional::cross_entropy(
            scored, targets.narrow(1, lo, L - lo).reshape({-1}),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
        sums[0] += loss.to(at::kDouble);
        sums[1] += double(scored.size(0));
      }
    }
    grid.sp->all_reduce(sums, ReduceOp::kSum)->wait();
    auto s = sums.cpu();
    ContextEvalRow row;
    row.context_len = c;
    row.tokens = int64_t(s[1].item<double>());
    row.loss = s[0].item<double>() / s[1].item<double>();
    row.bits_per_token = row.loss / std::log(2.0);
    // Finite parameters can still overflow in the activations (float16's range most easily):
    // a NaN loss is no result.
    if (!std::isfinite(row.loss)) {
      const auto dtype = model->token_embedding->weight.scalar_type();
      throw std::runtime_error(
          "eval: the loss at context length " + std::to_string(c) + " is " +
          std::to_string(row.loss) +
          ": the model's logits are not finite (its parameters are, so its activations overflow "
          "in " +
          dtype_short_name(dtype) + "); " + activation_overflow_advice(dtype) +
          (rows.empty() ? "" : ". The rows above are good"));
    }
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rows.push_back(row);
    if (on_row) on_row(row);
  }
  return rows;
}

}  // namespace longnet
