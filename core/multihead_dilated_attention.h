// Multi-head dilated attention, the reference library's MultiheadDilatedAttention with MAGNETO's
// sub-LayerNorm and init: q/k/v projections, xPos on q and k, dilated attention through an
// AttentionBackend (one device or sequence-parallel), sub-LayerNorm, output projection.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "longnet/core/attention_backend.h"
#include "longnet/core/options.h"
#include "longnet/core/xpos.h"

namespace longnet {

// x W^T + b through ATen's linear, which folds the bias into the GEMM. (The C++ frontend's
// Linear::forward adds it afterwards for inputs of more than two dims: one more pass over the
// output, and under autocast a float32 broadcast add into the bfloat16 result.)
at::Tensor linear_apply(torch::nn::Linear& linear, const at::Tensor& x);

class MultiheadDilatedAttentionImpl : public torch::nn::Module {
 public:
  // From the layer's options: embed_dim = o.d_model, o.num_heads, the attention's segments,
  // rates and engine, o.dropout as attention dropout (training mode only), o.layer_norm_eps,
  // and o.gamma_init as the xavier_normal_ gain of v_proj and out_proj (q_proj and k_proj get
  // gain 1; biases start at 0). sub_layer_norm: MAGNETO's sub-LN over embed_dim before out_proj.
  // xpos: rotate q and k with xPos (global positions). Throws OptionsError for bad options.
  explicit MultiheadDilatedAttentionImpl(const LayerOptions& o, bool sub_layer_norm = true,
                                         bool bias = true, bool xpos = true);

  // query: (B, N_local, embed_dim); key, value: (B, N_local, embed_dim), the same tokens' positions
  // (dilated attention pairs query and key positions). Returns (B, N_local, embed_dim).
  at::Tensor forward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                     bool is_causal, AttentionBackend& backend);
  // The same on one device (LocalAttention).
  at::Tensor forward(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                     bool is_causal = false);

  // Re-draws the parameters as the constructor does (MAGNETO init).
  void reset_parameters();

  int64_t embed_dim() const { return embed_dim_; }
  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return embed_dim_ / num_heads_; }
  // Segment lengths and rates; is_causal and dropout are set per call.
  const DilatedAttentionOptions& attention_options() const { return attention_; }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};  // null when layer_norm is off
  XPos xpos{nullptr};                  // null when xpos is off

 private:
  int64_t embed_dim_, num_heads_;
  double dropout_, gamma_init_;  // attention dropout; gain of v_proj and out_proj
  DilatedAttentionOptions attention_;
  LocalAttention local_;
};
TORCH_MODULE(MultiheadDilatedAttention);

}  // namespace longnet
