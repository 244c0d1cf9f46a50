// LongNet dilated attention (DESIGN.md section 3), exactly: per-head offsets j mod r, any N
// (the last segment may be shorter; no padding ever enters a softmax), r need not divide w, any
// number of heads, one softmax over the union of the branches, exact gradients.
//
// Each branch i splits the sequence into segments [m*w_i, min((m+1)*w_i, N)). For head j with
// offset s = j mod r_i, the rows of segment m at local offsets s, s + r_i, s + 2 r_i, ... form a
// dense attention problem (causal within it if asked). Heads of one offset class share rows, so
// each (branch, offset class, full segments | last segment) is one dense attention over a strided
// view of q, k, v (row stride r_i, head stride r_i) with no copy:
//
//   q (B, N, H, D) -> view (B*M, n, H_s, D)     M full segments, n = ceil((w - s) / r) rows,
//                                               H_s = ceil((H - s) / r) heads: s, s+r, ...
//
// Every problem returns (out_c, lse_c); the branches merge by log-sum-exp into (out, lse).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/dense_attention.h"

namespace torch::autograd {
struct AutogradContext;
}

namespace longnet {

struct DilatedAttentionOptions {
  std::vector<int64_t> segment_lengths;  // w_i >= 1
  std::vector<int64_t> dilation_rates;   // r_i >= 1, same count as segment_lengths
  bool is_causal = false;
  std::optional<double> softmax_scale;  // default 1 / sqrt(D)
  double dropout = 0.0;                 // attention dropout probability, in [0, 1)
};

// Checks the options alone (lists, values); throws c10::Error naming the problem.
void dilated_options_check(const DilatedAttentionOptions& o);
// Checks q, k, v (B, N, H, D) against each other and the options.
void dilated_inputs_check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const DilatedAttentionOptions& o);

// q, k, v: (B, N, H, D), same dtype and device. Returns (B, N, H, D). Differentiable with exact
// gradients for q, k and v. Dropout applies when o.dropout > 0 (the module passes 0 in eval).
at::Tensor dilated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const DilatedAttentionOptions& o);

// ---- the engine, shared with sequence parallelism (parallel/) --------------------------------

// One dense problem of a dilated branch, as views. The destination views point into the merged
// output and log-sum-exp; the gradient views into the gradient accumulators.
struct AttentionCall {
  at::Tensor q, k, v;     // (B', n_q, H', D), (B', n_k, H', D), (B', n_k, H', D)
  at::Tensor out, lse;    // (B', n_q, H', D) and (B', n_q, H'): see the two engine functions
  at::Tensor dout;        // backward: (B', n_q, H', D) view of the output gradient
  at::Tensor dq, dk, dv;  // backward: like q, k, v, views into the gradient accumulators
  bool causal = false;
  at::Tensor rng;  // dropout state of the forward, for the backward
};

// Runs calls and merges them by log-sum-exp into their `out` and `lse` views, which point into
// accumulators that start at 0 and -inf: out_acc (B, N, H, D) and lse (B, N, H), both in
// lse_dtype_for(q dtype). Rows no call covers stay 0 / -inf. Sets each call's rng. (The plain
// ATen merge: CPU, or LONGNET_FUSED_MERGE=0.)
void attention_calls_forward(std::vector<AttentionCall>& calls, const DenseAttentionArgs& args);
// Adds c's exact gradients into its dq, dk, dv views. Here `out` and `lse` are views of the
// merged output and log-sum-exp of *all* calls that share these queries.
void attention_call_backward(AttentionCall& c, const DenseAttentionArgs& args);

// A strided view of x (B, N, H, *rest): batch entries [b_begin, b_begin + b_count), rows
// row_begin + a * row_stride (a < rows), heads head_begin + h * head_stride (h < heads).
// Returns (b_count, rows, heads, *rest).
at::Tensor strided_rows_view(const at::Tensor& x, int64_t b_begin, int64_t b_count,
                             int64_t row_begin, int64_t rows, int64_t row_stride,
                             int64_t head_begin, int64_t heads, int64_t head_stride);

// The plan of one single-device dilated attention: which (branch, offset class, part) problems
// exist. Exposed for sequence parallelism and tests.
struct DilatedProblem {
  int branch = 0;
  int64_t w = 0, r = 1, s = 0;  // segment length (clipped to N), rate, offset class
  int64_t b_begin = 0, b_count = 1;
  int64_t seg_begin = 0, seg_count = 1;  // first token of the first segment; segments
  int64_t n = 0;                         // rows per segment in this class
  int64_t heads = 0;                     // H_s: heads s, s + r, ...
};
std::vector<DilatedProblem> dilated_plan(int64_t B, int64_t N, int64_t H,
                                         const DilatedAttentionOptions& o);
// The view of x (B, N, H, *rest) that problem p reads or writes: (B'', n, H_s, *rest).
at::Tensor dilated_view(const at::Tensor& x, const DilatedProblem& p);

// Forward without autograd: out (B, N, H, D) in q's dtype, lse (B, N, H) float32 (float64 for
// double inputs), per-problem dropout states, and (GPU forwards run in one piece only) the
// merged lse again in each plan problem's own layout, (B', H', n) float32 contiguous, as the
// problems' backwards read it.
struct DilatedForward {
  at::Tensor out, lse;
  std::vector<at::Tensor> rng;
  std::vector<at::Tensor> lse_parts;  // empty, or one per dilated_plan problem
};
DilatedForward dilated_attention_forward(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const DilatedAttentionOptions& o);
// The GPU forward: dense problems, then the fused merge (dilated_merge.h); CPU float32 tensors
// take the merge's host emulation (for tests). With chunk_elements > 0 and more elements in q,
// it runs in batch slices and chunks of the sequence of about that many elements, holding the
// problems' outputs of one chunk at a time instead of one q-sized output per branch (no
// dropout). dilated_attention_forward chunks GPU inputs of more than 2^30 elements by 2^28.
DilatedForward dilated_attention_forward_fused(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v,
                                               const DilatedAttentionOptions& o,
                                               int64_t chunk_elements);
// Gradients (dq, dk, dv), each (B, N, H, D). lse_parts: empty, or a forward's lse_parts (spares
// a copy of the lse per problem). With packed, the fused GPU path returns the three as the
// slices [:, :, 0..2] of one (B, N, 3, H, D) tensor (the gradient of a fused q/k/v projection,
// with no concatenation); otherwise, and on the plain path, they are separate tensors.
std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_attention_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::vector<at::Tensor>& rng,
    const DilatedAttentionOptions& o, const std::vector<at::Tensor>& lse_parts = {},
    bool packed = false);

// DESIGN.md section 7: FLOPs of one dilated-attention forward, sum over branches of
// 4 B H D (N / w_i) (w_i / r_i)^2 (w_i clipped to N), halved when causal. Backward = 2.5 x.
double dilated_forward_flops(int64_t B, int64_t N, int64_t H, int64_t D,
                             const std::vector<int64_t>& w, const std::vector<int64_t>& r,
                             bool causal);

// Options and dropout states kept in an autograd context between forward and backward (this
// file's function and sequence parallelism's). The scale is stored resolved.
void dilated_ctx_save(torch::autograd::AutogradContext* ctx, const DilatedAttentionOptions& o,
                      int64_t head_dim, const std::vector<at::Tensor>& rng);
DilatedAttentionOptions dilated_ctx_options(torch::autograd::AutogradContext* ctx);
std::vector<at::Tensor> dilated_ctx_rng(torch::autograd::AutogradContext* ctx);

// The softmax scale in effect: o.softmax_scale or 1 / sqrt(head_dim).
double dilated_scale(const DilatedAttentionOptions& o, int64_t head_dim);

// ---- the module ------------------------------------------------------------------------------

// The reference Python library's DilatedAttention: segment_lengths, dilation_rates,
// softmax_scale = None, attention_dropout = 0; forward(query, key, value, is_causal = false).
// Dropout applies in training mode only.
class DilatedAttentionImpl : public torch::nn::Module {
 public:
  DilatedAttentionImpl(std::vector<int64_t> segment_lengths, std::vector<int64_t> dilation_rates,
                       std::optional<double> softmax_scale = std::nullopt,
                       double attention_dropout = 0.0);
  // query, key, value: (B, N, H, D) -> (B, N, H, D)
  at::Tensor forward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                     bool is_causal = false);
  const DilatedAttentionOptions& options() const { return options_; }

 private:
  DilatedAttentionOptions options_;
};
TORCH_MODULE(DilatedAttention);

}  // namespace longnet
