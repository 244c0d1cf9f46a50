// The decode step's fused small-batch linear: at batch 1 a step is a chain of kernels that each
// move almost nothing, so a LayerNorm (with the FFN's activation in front of it), the product,
// the bias and the residual add run as one CUDA kernel (small_linear_cuda.cu):
//
//   y = [residual +] LayerNorm(act(x)) W^T + bias,   x (M, K), W (N, K), M <= 8
//
// with the rounding points of the separate ops: act(x) and the LayerNorm's output in x's dtype,
// the product plus bias rounded to it, then the residual added in float32 and rounded again.
// small_linear_reference is the same composition of ATen ops, for other devices and for tests.
#pragma once

#include <ATen/core/Tensor.h>

#include "longnet/core/small_linear_kernel.h"  // kSmallLinearMaxRows
#include "longnet/core/xpos.h"

namespace longnet {

enum class SmallLinearActivation { none, gelu, relu };

struct SmallLinearArgs {
  at::Tensor weight, bias;  // (N, K), (N,) or undefined
  at::Tensor gamma, beta;   // (K,) float32 on the GPU, or undefined: no LayerNorm
  double eps = 1e-5;
  SmallLinearActivation activation = SmallLinearActivation::none;  // before the LayerNorm
  // xPos on the output, as xpos_rotate_at (no residual then): columns [0, rotate_width) are
  // queries, [rotate_width, 2 rotate_width) keys, in heads of rotate_head_dim; the tables' row m
  // is row m's position. Null: no rotation.
  const XposPositionTables* rotate = nullptr;
  int64_t rotate_width = 0, rotate_head_dim = 0;
};

// Whether the kernel takes x (M, K) with these arguments: CUDA, float32/float16/bfloat16 (x, the
// weight and the bias alike), 1 <= M <= 8, K a multiple of 16 bytes' elements, the staged rows
// within 96 KiB, float32 gamma and beta of K elements, float32 xPos tables of M rows.
bool small_linear_supported(const at::Tensor& x, const SmallLinearArgs& a);

// The fused kernel; residual (M, N) in x's dtype or undefined. Refuses what it does not support.
at::Tensor small_linear(const at::Tensor& x, const SmallLinearArgs& a,
                        const at::Tensor& residual = at::Tensor());

// The same maths as separate ATen ops (any device and dtype).
at::Tensor small_linear_reference(const at::Tensor& x, const SmallLinearArgs& a,
                                  const at::Tensor& residual = at::Tensor());

}  // namespace longnet
