// The two engines that compute dilated attention from its plan (dilated_plan.h), shared with
// sequence parallelism (parallel/):
//   - the plain one: every dense problem's output and lse merged into float32 accumulators with
//     ATen maths (the CPU path, and the GPU with engine.fused_merge off);
//   - the fused one (GPU): the problems on several streams, then one merge kernel
//     (dilated_merge.h), in chunks when the outputs would not fit.
// Every problem is a dense attention over strided views; the backward runs each problem's
// attention backward with the merged output and lse, which gives the exact gradients.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <tuple>
#include <vector>

#include "longnet/core/dense_attention.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/core/options.h"

namespace longnet {

// One dense problem, as views. The destination views point into the merged output and
// log-sum-exp; the gradient views into the gradient accumulators.
struct AttentionCall {
  at::Tensor q, k, v;     // (B', n_q, H', D), (B', n_k, H', D), (B', n_k, H', D)
  at::Tensor out, lse;    // (B', n_q, H', D) and (B', n_q, H'): see the two functions below
  at::Tensor weights;     // forward, optional: (B', n_q, H') view of the merge weights' sum
  at::Tensor dout;        // backward: (B', n_q, H', D) view of the output gradient
  at::Tensor dq, dk, dv;  // backward: like q, k, v, views into the gradient accumulators
  bool causal = false;
  int64_t copies = 1;  // identical branches it stands for (DilatedProblem::copies)
  at::Tensor rng;      // dropout state of the forward, for the backward
};

// The dense-attention arguments of o's problems (scale, dropout, kernel) for this head dim.
DenseAttentionArgs dense_args_of(const DilatedAttentionOptions& o, int64_t head_dim);
// The call of plan problem p over q, k, v (B, N, H, D): their views, and p's copies.
AttentionCall plan_call(const DilatedProblem& p, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v);

// ---- the plain engine ------------------------------------------------------------------------

// Runs calls and merges them by log-sum-exp into their `out` and `lse` views, which point into
// accumulators that start at 0 and -inf: out_acc (B, N, H, D) and lse (B, N, H), both in
// lse_dtype_for(q dtype). Rows no call covers stay 0 / -inf. Sets each call's rng; adds each
// call's merge weights exp(lse_c - lse) to its `weights` view where that is defined.
void attention_calls_forward(std::vector<AttentionCall>& calls, const DenseAttentionArgs& args);
// Adds c's exact gradients into its dq, dk, dv views. Here `out` and `lse` are views of the
// merged output and log-sum-exp of *all* calls that share these queries.
void attention_call_backward(AttentionCall& c, const DenseAttentionArgs& args);

// ---- forward and backward over a whole plan --------------------------------------------------

// out (B, N, H, D) in q's dtype, lse (B, N, H) float32 (float64 for double inputs), per-problem
// dropout states, and (fused forwards run in one piece only) the merged lse again in each plan
// problem's own layout, (B', H', n) float32 contiguous, as the problems' backwards read it.
struct DilatedForward {
  at::Tensor out, lse;
  std::vector<at::Tensor> rng;
  std::vector<at::Tensor> lse_parts;  // empty, or one per dilated_plan problem
};

// q, k, v (B, N, H, D), already checked (dilated_attention.h checks at the public boundary); q
// and k row-major, v row-major or a dense-headed strided view on the GPU.
DilatedForward dilated_plain_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const DilatedAttentionOptions& o);
// The fused GPU forward (CPU float32 tensors take the merge's host emulation, for tests). With
// chunk_elements > 0 and more elements in q, it runs in batch slices and chunks of the sequence
// of about that many elements, holding the problems' outputs of one chunk at a time instead of
// one q-sized output per branch (no dropout).
DilatedForward dilated_fused_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const DilatedAttentionOptions& o, int64_t chunk_elements);
// The chunk size of a fused GPU forward of q under o's engine options: 0 (one piece) or the
// elements per chunk.
int64_t dilated_chunk_elements(const at::Tensor& q, const DilatedAttentionOptions& o);

// Gradients (dq, dk, dv) of either engine's forward. lse_parts: empty, or the forward's. With
// packed, the fused engine returns the three as the slices [:, :, 0..2] of one (B, N, 3, H, D)
// tensor (the gradient of a fused q/k/v projection, with no concatenation).
std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_plain_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::vector<at::Tensor>& rng,
    const DilatedAttentionOptions& o);
std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_fused_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::vector<at::Tensor>& rng,
    const DilatedAttentionOptions& o, const std::vector<at::Tensor>& lse_parts, bool packed);

}  // namespace longnet
