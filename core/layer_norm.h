// LayerNorm as the models run it. On CUDA, one fused kernel normalises rows in float32 and writes
// the output straight in the dtype the next GEMM reads: autocast's 16-bit dtype when autocast is
// on (a float32 residual stream goes in, bfloat16 comes out), else the input's dtype. That is the
// value autocast's own path produces (a float32 LayerNorm whose output the next linear casts),
// without the float32 output and the casts; gamma and beta stay float32 and get float32
// gradients. Elsewhere (CPU, or widths not a multiple of 4) it is the module's own forward.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/normalization.h>

#include <array>

#include "longnet/core/layer_norm_kernel.h"  // kLayerNormMaxCachedC

namespace longnet {

// norm's LayerNorm over the last dimension of x.
at::Tensor layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& x);

// The fused CUDA LayerNorm itself (differentiable): x (..., C) on a GPU, weight and bias (C,),
// the output in out_dtype. Exposed for tests.
at::Tensor layer_norm_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            double eps, at::ScalarType out_dtype);

// Whether layer_norm_fused takes these inputs.
bool layer_norm_fused_supported(const at::Tensor& x, const at::Tensor& weight,
                                const at::Tensor& bias);

// The residual add in front of a LayerNorm, fused: {x + res, norm(x + res)}, the sum in x's dtype
// (as `x + res` gives it) and the normalised rows as layer_norm_apply gives them. On CUDA one
// kernel reads x and res once and writes both; its backward adds the sum's own gradient to the
// LayerNorm's input gradient and writes res's copy in res's dtype in the same kernel. Elsewhere
// (CPU, other dtypes, rows wider than kLayerNormMaxCachedC) it is the plain add and
// layer_norm_apply.
std::array<at::Tensor, 2> add_layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& x,
                                               const at::Tensor& res);

// The fused kernel of add_layer_norm_apply (differentiable, CUDA). res must have x's shape and
// out_dtype, with x + res of x's dtype. Exposed for tests.
std::array<at::Tensor, 2> add_layer_norm_fused(const at::Tensor& x, const at::Tensor& res,
                                               const at::Tensor& weight, const at::Tensor& bias,
                                               double eps, at::ScalarType out_dtype);
// norm(gelu(h)) with the exact GELU: the FFN's activation and sub-LayerNorm. On CUDA (rows of
// at most kLayerNormMaxCachedC) the fused LayerNorm applies the GELU as it reads h (gelu(h)
// rounded to h's dtype, as ATen's GELU stores it, and kept for the backward), and the backward
// takes the GELU's gradient inside the LayerNorm's backward kernel: one pass each way over these
// wide rows instead of two. Elsewhere it is at::gelu and layer_norm_apply.
at::Tensor gelu_layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& h);
// Its fused form (differentiable, CUDA), exposed for tests.
at::Tensor gelu_layer_norm_fused(const at::Tensor& h, const at::Tensor& weight,
                                 const at::Tensor& bias, double eps, at::ScalarType out_dtype);
bool gelu_layer_norm_fused_supported(const at::Tensor& h, const at::Tensor& weight,
                                     const at::Tensor& bias);
bool add_layer_norm_fused_supported(const at::Tensor& x, const at::Tensor& res,
                                    const at::Tensor& weight, const at::Tensor& bias,
                                    at::ScalarType out_dtype);

}  // namespace longnet
