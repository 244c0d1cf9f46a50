// Multi-head dilated attention: projections, xPos, the backend's dilated attention, sub-LN and
// out_proj. The constructor rejects shapes the fast kernels cannot take, saying what would work.
#include "longnet/core/multihead_dilated_attention.h"

#include "longnet/core/layer_norm.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <utility>

namespace longnet {

at::Tensor linear_apply(torch::nn::Linear& linear, const at::Tensor& x) {
  return at::linear(x, linear->weight, linear->bias);
}

MultiheadDilatedAttentionImpl::MultiheadDilatedAttentionImpl(const LayerOptions& o,
                                                             bool use_layer_norm, bool bias,
                                                             bool use_xpos)
    : embed_dim_(o.d_model),
      num_heads_(o.num_heads),
      dropout_(o.dropout),
      gamma_init_(o.gamma_init),
      attention_(o.attention) {
  layer_options_check(o);
  attention_.dropout = 0.0;  // set per call, from the training flag
  attention_.is_causal = false;
  const int64_t embed_dim = o.d_model, num_heads = o.num_heads;

  auto linear = [&](const char* name) {
    return register_module(
        name, torch::nn::Linear(torch::nn::LinearOptions(embed_dim, embed_dim).bias(bias)));
  };
  q_proj = linear("q_proj");
  k_proj = linear("k_proj");
  v_proj = linear("v_proj");
  if (use_layer_norm)
    norm = register_module(
        "norm",
        torch::nn::LayerNorm(torch::nn::LayerNormOptions({embed_dim}).eps(o.layer_norm_eps)));
  out_proj = linear("out_proj");
  if (use_xpos) xpos = register_module("xpos", XPos(embed_dim / num_heads));
  reset_parameters();
}

void MultiheadDilatedAttentionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const std::pair<torch::nn::Linear*, double> gains[] = {
      {&q_proj, 1.0}, {&k_proj, 1.0}, {&v_proj, gamma_init_}, {&out_proj, gamma_init_}};
  for (auto [lin, gain] : gains) {
    torch::nn::init::xavier_normal_((*lin)->weight, gain);
    if ((*lin)->bias.defined()) (*lin)->bias.zero_();
  }
  if (norm) norm->reset_parameters();
}

at::Tensor MultiheadDilatedAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key,
                                                  const at::Tensor& value, bool is_causal,
                                                  AttentionBackend& backend) {
  TORCH_CHECK(query.dim() == 3 && query.size(2) == embed_dim_,
              "MultiheadDilatedAttention: query must be (batch, seq_len, embed_dim = ", embed_dim_,
              "); got ", query.sizes());
  TORCH_CHECK(key.sizes() == query.sizes() && value.sizes() == query.sizes(),
              "MultiheadDilatedAttention: query, key and value must have the same shape (dilated "
              "attention pairs query and key positions); got ",
              query.sizes(), ", ", key.sizes(), ", ", value.sizes());
  const int64_t B = query.size(0), N = query.size(1), H = num_heads_, D = head_dim();
  // Without the causal mask q' . k' spans a whole block of xPos scales (xpos.h).
  if (xpos && !is_causal)
    xpos_range_check(backend.global_len(N), attention_.segment_lengths, query.scalar_type(),
                     xpos->scale_base(), /*causal=*/false);
  at::Tensor q, k, v;  // (B, N_local, H, D)
  if (query.is_same(key) && key.is_same(value)) {
    // Self-attention: one projection GEMM for q, k and v (one read and one cast of the input,
    // one gradient for it).
    auto w = at::cat({q_proj->weight, k_proj->weight, v_proj->weight});
    auto b =
        q_proj->bias.defined() ? at::cat({q_proj->bias, k_proj->bias, v_proj->bias}) : at::Tensor();
    auto qkv = at::linear(query, w, b).view({B, N, 3, H, D});
    if (xpos) {
      std::tie(q, k, v) = xpos->forward_qkv(qkv, backend.position_offset(N), backend.global_len(N),
                                            attention_.segment_lengths);
    } else {
      auto u = qkv.unbind(2);
      q = u[0], k = u[1], v = u[2];
    }
  } else {
    q = linear_apply(q_proj, query).view({B, N, H, D});
    k = linear_apply(k_proj, key).view({B, N, H, D});
    v = linear_apply(v_proj, value).view({B, N, H, D});
    if (xpos)
      std::tie(q, k) = xpos->forward(q, k, backend.position_offset(N), backend.global_len(N),
                                     attention_.segment_lengths);
  }
  DilatedAttentionOptions o = attention_;
  o.is_causal = is_causal;
  o.dropout = is_training() ? dropout_ : 0.0;
  auto x = backend.attend(q, k, v, o).reshape({B, N, embed_dim_});  // (B, N_local, embed_dim)
  if (norm) x = layer_norm_apply(norm, x);
  return linear_apply(out_proj, x);
}

at::Tensor MultiheadDilatedAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key,
                                                  const at::Tensor& value, bool is_causal) {
  return forward(query, key, value, is_causal, local_);
}

}  // namespace longnet
