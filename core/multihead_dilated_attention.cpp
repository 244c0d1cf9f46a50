// Multi-head dilated attention: projections, xPos, the backend's dilated attention, sub-LN and
// out_proj. The constructor rejects shapes the fast kernels cannot take, saying what would work.
#include "core/multihead_dilated_attention.h"

#include "core/layer_norm.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>

namespace longnet {

namespace {

// The num_heads closest to `wanted` that give a head dim that is a whole multiple of 8, as text.
std::string mhda_heads_that_work(int64_t embed_dim, int64_t wanted) {
  std::vector<int64_t> ok;
  for (int64_t h = 1; h <= embed_dim; ++h)
    if (embed_dim % h == 0 && (embed_dim / h) % 8 == 0) ok.push_back(h);
  if (ok.empty())
    return "no num_heads works: embed_dim must be a multiple of 8 (e.g. " +
           std::to_string((embed_dim + 7) / 8 * 8) + ")";
  std::stable_sort(ok.begin(), ok.end(), [&](int64_t a, int64_t b) {
    return std::llabs(a - wanted) < std::llabs(b - wanted);
  });
  ok.resize(std::min<size_t>(ok.size(), 4));
  std::sort(ok.begin(), ok.end());
  std::ostringstream s;
  s << "num_heads in {";
  for (size_t i = 0; i < ok.size(); ++i)
    s << (i ? ", " : "") << ok[i] << " (head dim " << embed_dim / ok[i] << ")";
  s << "} would work";
  return s.str();
}

}  // namespace

at::Tensor linear_apply(torch::nn::Linear& linear, const at::Tensor& x) {
  return at::linear(x, linear->weight, linear->bias);
}

void mhda_shape_check(int64_t embed_dim, int64_t num_heads) {
  TORCH_CHECK(embed_dim >= 1 && num_heads >= 1,
              "MultiheadDilatedAttention: embed_dim = ", embed_dim, " and num_heads = ", num_heads,
              " must be >= 1");
  TORCH_CHECK(embed_dim % num_heads == 0, "MultiheadDilatedAttention: embed_dim = ", embed_dim,
              " is not divisible by num_heads = ", num_heads, "; ",
              mhda_heads_that_work(embed_dim, num_heads));
  const int64_t head_dim = embed_dim / num_heads;
  TORCH_CHECK(head_dim % 8 == 0,
              "MultiheadDilatedAttention: head dim = embed_dim / num_heads = ", embed_dim, " / ",
              num_heads, " = ", head_dim, " must be a multiple of 8 (the fast kernels need it); ",
              mhda_heads_that_work(embed_dim, num_heads));
}

MultiheadDilatedAttentionImpl::MultiheadDilatedAttentionImpl(
    int64_t embed_dim, int64_t num_heads, std::vector<int64_t> segment_lengths,
    std::vector<int64_t> dilation_rates, double dropout, bool bias, bool use_layer_norm,
    double layer_norm_eps, double gamma_init, bool use_xpos)
    : embed_dim_(embed_dim), num_heads_(num_heads), dropout_(dropout), gamma_init_(gamma_init) {
  mhda_shape_check(embed_dim, num_heads);
  attention_.segment_lengths = std::move(segment_lengths);
  attention_.dilation_rates = std::move(dilation_rates);
  attention_.dropout = dropout;
  dilated_options_check(attention_);
  attention_.dropout = 0.0;  // set per call, from the training flag

  auto linear = [&](const char* name) {
    return register_module(
        name, torch::nn::Linear(torch::nn::LinearOptions(embed_dim, embed_dim).bias(bias)));
  };
  q_proj = linear("q_proj");
  k_proj = linear("k_proj");
  v_proj = linear("v_proj");
  if (use_layer_norm)
    norm = register_module(
        "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({embed_dim}).eps(layer_norm_eps)));
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
