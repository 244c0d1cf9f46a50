// LongNet dilated attention (docs/design.md section 2), exactly: per-head offsets j mod r, any N
// (the last segment may be shorter; no padding ever enters a softmax), r need not divide w, any
// number of heads, one softmax over the union of the branches, exact gradients.
//
// Each branch i splits the sequence into segments [m*w_i, min((m+1)*w_i, N)); for head j with
// offset s = j mod r_i the rows of a segment at local offsets s, s + r_i, ... attend to each
// other. dilated_plan.h turns that into dense problems over strided views and dilated_engine.h
// computes and merges them; this header is the public function, its autograd and the module.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include "longnet/core/dilated_engine.h"
#include "longnet/core/options.h"

namespace torch::autograd {
struct AutogradContext;
}

namespace longnet {

// Checks q, k, v (B, N, H, D) against each other and the options (dilated_options_check); throws
// c10::Error (the options' own errors as OptionsError) naming the problem.
void dilated_inputs_check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const DilatedAttentionOptions& o);

// q, k, v: (B, N, H, D), same dtype and device. Returns (B, N, H, D). Differentiable with exact
// gradients for q, k and v. Dropout applies when o.dropout > 0 (the module passes 0 in eval).
at::Tensor dilated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const DilatedAttentionOptions& o);

// Forward without autograd (checks the inputs), by the engine o.engine picks: the fused one for
// GPU tensors (unless engine.fused_merge is off), the plain one otherwise.
DilatedForward dilated_attention_forward(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const DilatedAttentionOptions& o);
// Its gradients (dq, dk, dv), each (B, N, H, D); see dilated_fused_backward for lse_parts and
// packed (the plain engine ignores both).
std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_attention_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::vector<at::Tensor>& rng,
    const DilatedAttentionOptions& o, const std::vector<at::Tensor>& lse_parts = {},
    bool packed = false);

// Throws "double backward is not supported" when a backward runs with create_graph (grad mode on):
// the backwards of dilated attention (this file's and sequence parallelism's) compute the exact
// first derivatives with kernels that are not themselves differentiable.
void dilated_double_backward_check();

// Options and dropout states kept in an autograd context between forward and backward (this
// file's function and sequence parallelism's). The scale is stored resolved.
void dilated_ctx_save(torch::autograd::AutogradContext* ctx, const DilatedAttentionOptions& o,
                      int64_t head_dim, const std::vector<at::Tensor>& rng);
DilatedAttentionOptions dilated_ctx_options(torch::autograd::AutogradContext* ctx);
std::vector<at::Tensor> dilated_ctx_rng(torch::autograd::AutogradContext* ctx);

// ---- the module ------------------------------------------------------------------------------

// The reference Python library's DilatedAttention: segment_lengths, dilation_rates,
// softmax_scale = None, attention_dropout = 0; forward(query, key, value, is_causal = false).
// Dropout applies in training mode only. The options' engine is used as given.
class DilatedAttentionImpl : public torch::nn::Module {
 public:
  explicit DilatedAttentionImpl(DilatedAttentionOptions options);
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
