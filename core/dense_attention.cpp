// Dense attention with log-sum-exp: the plain maths (CPU, and float32 on the GPU) and the device
// dispatch (see dense_attention.h). The maths path materialises the (n_q x n_k) scores per head,
// which is what the branch sizes on a CPU (tests, the tiny model) afford.
#include "longnet/core/dense_attention.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <limits>

namespace longnet {
namespace {

at::ScalarType compute_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// (B, n, H, D) view -> (B, H, n, D) in the compute dtype.
at::Tensor to_bhnd(const at::Tensor& x) {
  return x.permute({0, 2, 1, 3}).to(compute_dtype(x.scalar_type()));
}

// Scaled scores (B, H, n_q, n_k) with future keys at -inf when causal.
at::Tensor scores(const at::Tensor& q, const at::Tensor& k, const DenseAttentionArgs& a) {
  auto s = at::matmul(q, k.transpose(-2, -1)).mul_(a.scale);
  if (a.causal) {
    auto future = at::ones({s.size(-2), s.size(-1)}, s.options().dtype(at::kBool)).triu_(1);
    s.masked_fill_(future, -std::numeric_limits<double>::infinity());
  }
  return s;
}

// Keep-mask scaled by 1/(1-p), regenerated bit for bit from the seed stored in `rng` (drawn on
// the CPU so that CPU and GPU runs of the maths path agree).
at::Tensor dropout_mask(const at::Tensor& rng, at::IntArrayRef shape, const at::TensorOptions& o,
                        double p) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(rng.item<int64_t>());
  auto keep = at::empty(shape, o.device(at::kCPU)).bernoulli_(1.0 - p, gen);
  return keep.div_(1.0 - p).to(o.device());
}

// The SDPA kernels take float16/bfloat16 on the GPU, and cuDNN's backward refuses problems of
// one query and one key; problems this small cost nothing in the plain maths (the same rule in
// forward and backward, so both take the same path).
bool use_sdpa_kernels(const at::Tensor& q, const at::Tensor& k) {
  constexpr int64_t kTinyRows = 16;
  return q.is_cuda() && q.scalar_type() != at::kFloat && q.scalar_type() != at::kDouble &&
         q.size(1) > kTinyRows && k.size(1) > kTinyRows;
}

}  // namespace

at::ScalarType lse_dtype_for(at::ScalarType t) {
  return compute_dtype(t);
}

DenseAttentionOut dense_attention_forward(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const DenseAttentionArgs& args) {
  TORCH_CHECK(!args.causal || q.size(1) == k.size(1),
              "dense attention: causal problems must be square, got n_q = ", q.size(1),
              ", n_k = ", k.size(1));
#ifdef LONGNET_WITH_CUDA
  if (use_sdpa_kernels(q, k)) return dense_attention_forward_cuda(q, k, v, args);
#endif
  return dense_attention_forward_math(q, k, v, args);
}

DenseAttentionOut dense_attention_forward_math(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v,
                                               const DenseAttentionArgs& args) {
  auto qt = to_bhnd(q), kt = to_bhnd(k), vt = to_bhnd(v);
  auto s = scores(qt, kt, args);
  // exp(s - max) summed, and the output divided by the sum: exp(s - lse) would carry the
  // rounding of lse (its ulp, large where the scores are) into every weight.
  auto m = std::get<0>(s.max(-1, /*keepdim=*/true));                 // (B, H, n_q, 1)
  m.masked_fill_(m == -std::numeric_limits<double>::infinity(), 0);  // (rows of no key)
  auto p = s.sub_(m).exp_();
  auto l = p.sum(-1, /*keepdim=*/true);
  DenseAttentionOut r;
  r.lse = (m + l.log()).squeeze(-1);  // (B, H, n_q)
  if (args.dropout > 0) {
    // One seed per problem, drawn from the default generator so that at::manual_seed governs it.
    r.rng = at::randint(std::numeric_limits<int64_t>::max(), {}, at::TensorOptions(at::kLong));
    p.mul_(dropout_mask(r.rng, p.sizes(), p.options(), args.dropout));
  }
  r.out = at::matmul(p, vt).div_(l).permute({0, 2, 1, 3}).to(q.scalar_type());
  return r;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_attention_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& rng,
    const DenseAttentionArgs& args) {
#ifdef LONGNET_WITH_CUDA
  if (use_sdpa_kernels(q, k))
    return dense_attention_backward_cuda(dout, q, k, v, out, lse, rng, args);
#endif
  return dense_attention_backward_math(dout, q, k, v, out, lse, rng, args);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_attention_backward_math(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& rng,
    const DenseAttentionArgs& args) {
  auto qt = to_bhnd(q), kt = to_bhnd(k), vt = to_bhnd(v), dot = to_bhnd(dout), ot = to_bhnd(out);
  // P = exp(S - lse) with the merged lse: this branch's share of the whole softmax.
  auto p = scores(qt, kt, args).sub_(lse.to(qt.scalar_type()).unsqueeze(-1)).exp_();
  auto dp = at::matmul(dot, vt.transpose(-2, -1));  // (B, H, n_q, n_k)
  at::Tensor pd = p;                                // dropped, rescaled weights
  if (args.dropout > 0) {
    auto mask = dropout_mask(rng, p.sizes(), p.options(), args.dropout);
    pd = p * mask;
    dp.mul_(mask);
  }
  auto dv = at::matmul(pd.transpose(-2, -1), dot);
  // dS = P * (dP - rowsum(dO * O)), with O the merged output.
  auto delta = (dot * ot).sum(-1, /*keepdim=*/true);
  auto ds = p.mul_(dp.sub_(delta));
  auto dq = at::matmul(ds, kt).mul_(args.scale);
  auto dk = at::matmul(ds.transpose(-2, -1), qt).mul_(args.scale);
  auto back = [&](const at::Tensor& x) { return x.permute({0, 2, 1, 3}).to(q.scalar_type()); };
  return {back(dq), back(dk), back(dv)};
}

}  // namespace longnet
