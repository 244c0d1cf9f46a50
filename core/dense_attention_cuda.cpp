// Dense attention on the GPU through LibTorch's SDPA kernels, called directly on strided views:
// cuDNN (default; fastest on Hopper) or FlashAttention-2 (engine backend: flash).
// Facts these calls rely on (PyTorch 2.11, checked on an H200): both take (B, H, S, D) with any
// strides and stride(-1) == 1, both return a natural-log lse with the scale included (cuDNN as
// (B, H, S, 1), flash as (B, H, S)), and both backwards accept our merged lse if it is
// contiguous in that shape. cuDNN runs float16/bfloat16 only (float32 takes the maths path).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include "longnet/core/dense_attention.h"

namespace longnet {
namespace {

at::Tensor bhsd(const at::Tensor& x) {
  return x.transpose(1, 2);
}

}  // namespace

DenseAttentionOut dense_attention_forward_cuda(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const DenseAttentionArgs& a) {
  TORCH_CHECK(q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16,
              "dense attention (CUDA): the SDPA kernels take float16 or bfloat16, got ",
              q.scalar_type());
  DenseAttentionOut r;
  if (a.kernel == DenseKernel::kCudnn) {
    auto res = at::_scaled_dot_product_cudnn_attention(bhsd(q), bhsd(k), bhsd(v), std::nullopt,
                                                       /*compute_log_sumexp=*/true, a.dropout,
                                                       a.causal, false, a.scale);
    r.out = bhsd(std::get<0>(res));
    r.lse = std::get<1>(res).squeeze(-1);
    if (a.dropout > 0) r.rng = at::stack({std::get<6>(res).view({}), std::get<7>(res).view({})});
  } else {
    auto res = at::_scaled_dot_product_flash_attention(bhsd(q), bhsd(k), bhsd(v), a.dropout,
                                                       a.causal, false, a.scale);
    r.out = bhsd(std::get<0>(res));
    r.lse = std::get<1>(res);
    if (a.dropout > 0) r.rng = std::get<6>(res);
  }
  return r;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_attention_backward_cuda(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& rng,
    const DenseAttentionArgs& a) {
  const int64_t nq = q.size(1), nk = k.size(1);
  auto lse32 = lse.to(at::kFloat).contiguous();
  at::Tensor dq, dk, dv;
  if (a.kernel == DenseKernel::kCudnn) {
    auto empty = at::empty({0}, q.options().dtype(at::kLong));
    auto seed = rng.defined() ? rng.select(0, 0) : empty;
    auto offset = rng.defined() ? rng.select(0, 1) : empty;
    std::tie(dq, dk, dv) = at::_scaled_dot_product_cudnn_attention_backward(
        bhsd(dout), bhsd(q), bhsd(k), bhsd(v), bhsd(out), lse32.unsqueeze(-1), seed, offset,
        at::Tensor(), at::Tensor(), at::Tensor(), nq, nk, a.dropout, a.causal, a.scale);
  } else {
    auto empty = at::empty({0}, q.options().dtype(at::kLong));
    auto seed = rng.defined() ? rng : empty;
    std::tie(dq, dk, dv) = at::_scaled_dot_product_flash_attention_backward(
        bhsd(dout), bhsd(q), bhsd(k), bhsd(v), bhsd(out), lse32, at::Tensor(), at::Tensor(), nq, nk,
        a.dropout, a.causal, seed, empty, a.scale);
  }
  return {bhsd(dq), bhsd(dk), bhsd(dv)};
}

}  // namespace longnet
