// Dense attention over one batch of (possibly strided) views, returning its log-sum-exp: the
// building block of every dilated-attention branch. The backward takes the *merged* output and
// log-sum-exp of all branches, which makes each branch's gradient exact (as ring attention does).
// CPU (and float32 on the GPU): plain ATen maths in float32 (float64 for double inputs).
// CUDA bfloat16/float16: LibTorch's cuDNN (default) or flash SDPA kernels on the strided views.
// (The chosen kernel is EngineOptions::backend, core/options.h.)
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace longnet {

enum class DenseKernel { kCudnn, kFlash };

struct DenseAttentionArgs {
  double scale = 1.0;    // multiplies q.k
  bool causal = false;   // square problems only: key t is visible to query p iff t <= p
  double dropout = 0.0;  // probability of dropping an attention weight
  DenseKernel kernel = DenseKernel::kCudnn;  // GPU bfloat16/float16 problems
};

// The result of one forward; `rng` is what the backward needs to regenerate the dropout mask.
struct DenseAttentionOut {
  at::Tensor out;  // (B, n_q, H, D), dtype of q
  at::Tensor lse;  // (B, H, n_q), float32 (float64 for double inputs), natural log, scale included
  at::Tensor rng;  // dropout state (undefined when dropout == 0)
};

// q: (B, n_q, H, D), k, v: (B, n_k, H, D); any strides with stride(-1) == 1.
DenseAttentionOut dense_attention_forward(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const DenseAttentionArgs& args);

// dout, out: (B, n_q, H, D) views of the merged gradient and output; lse: (B, H, n_q) merged,
// contiguous. Returns dq (B, n_q, H, D), dk, dv (B, n_k, H, D), in q's dtype.
std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_attention_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& rng,
    const DenseAttentionArgs& args);

// The plain-maths implementations (CPU, and float32 on the GPU, where the SDPA kernels do not
// run); also the reference the fast paths are tested against.
DenseAttentionOut dense_attention_forward_math(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const DenseAttentionArgs& args);
std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_attention_backward_math(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& rng,
    const DenseAttentionArgs& args);

// The dtype longnet keeps log-sum-exps in for inputs of dtype t.
at::ScalarType lse_dtype_for(at::ScalarType t);

#ifdef LONGNET_WITH_CUDA
// CUDA implementations (dense_attention_cuda.cpp), called by the functions above.
DenseAttentionOut dense_attention_forward_cuda(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const DenseAttentionArgs& args);
std::tuple<at::Tensor, at::Tensor, at::Tensor> dense_attention_backward_cuda(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& rng,
    const DenseAttentionArgs& args);
#endif

}  // namespace longnet
