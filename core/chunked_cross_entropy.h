// A language model's output layer and loss in one: cross-entropy of linear(hidden, weight, bias)
// against targets, computed over chunks of rows so that the (rows, V) logits never exist whole.
// At long context with a large vocabulary they would dominate memory: 4 x 32,768 rows of
// cl100k's 100,277 logits are 26 GB in bfloat16, and the float32 softmax of the plain path
// doubles that, twice over. The forward keeps only each row's log-sum-exp (rows floats); the
// backward recomputes each chunk's logits and gives exact gradients for hidden, weight and bias.
//
// Numbers: a chunk's logits are computed in compute_dtype (the dtype autocast would give the
// output layer: bfloat16 under bf16 training; by default hidden's dtype), with the bias added
// in the same GEMM, then softmax and loss in float32 (float64 for float64 inputs), as the plain
// path `cross_entropy(linear(h, W, b).float(), t)` does. Gradients of weight and bias are summed
// over chunks in float32 (float64), then given in their own dtypes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace longnet {

struct ChunkedCrossEntropyOptions {
  int64_t chunk_rows = 4096;                     // rows whose logits exist at a time
  bool sum = false;                              // the sum over rows (else the mean)
  std::optional<c10::ScalarType> compute_dtype;  // of the logits; default: hidden's dtype
  // On a GPU with a float32 accumulate: each chunk's log-sum-exp, loss and d loss / d logits in
  // one pass by the row kernels of core/cross_entropy_cuda.cu; false: ATen expressions (the
  // CPU's path), kept for comparison.
  bool row_kernels = true;
};

// hidden (..., d) floating; weight (V, d); bias (V) or undefined; targets (...) int64 in [0, V).
// Returns the scalar loss (float32, or float64 when the logits are float64), differentiable
// with respect to hidden, weight and bias.
at::Tensor linear_cross_entropy_chunked(const at::Tensor& hidden, const at::Tensor& weight,
                                        const at::Tensor& bias, const at::Tensor& targets,
                                        const ChunkedCrossEntropyOptions& options = {});

// The plain path it replaces (for tests and the switch): the whole logits, then cross-entropy.
at::Tensor linear_cross_entropy_plain(const at::Tensor& hidden, const at::Tensor& weight,
                                      const at::Tensor& bias, const at::Tensor& targets,
                                      const ChunkedCrossEntropyOptions& options = {});

// Rows per chunk so that one chunk's float32 logits take about `bytes` (at least 1 row).
int64_t cross_entropy_chunk_rows(int64_t vocab_size, int64_t bytes = int64_t{1} << 30);

}  // namespace longnet
