// The decode step's fused small-batch linear (launch interface, torch-free, so that nvcc never
// sees LibTorch headers); small_linear.h has the maths and the ATen entry point.
#pragma once

#include <cstdint>

namespace longnet {

// y = [residual +] norm(act(x)) W^T + bias over M <= kSmallLinearMaxRows rows. x, w, y,
// residual and bias share one dtype; x and w contiguous and 16-byte aligned, K a multiple of
// 16 / element size. Arithmetic in float32, with the rounding points of the separate ops: act(x)
// rounded to the dtype, the LayerNorm's output rounded to it, x W^T + bias rounded to it, and
// the residual added to that in float32 and rounded again.
struct SmallLinearParams {
  const void* x = nullptr;         // (M, K)
  const void* w = nullptr;         // (N, K), a Linear's weight
  const void* bias = nullptr;      // (N,) or null
  const float* gamma = nullptr;    // (K,) float32, or null: no LayerNorm of the rows
  const float* beta = nullptr;     // (K,) float32, with gamma
  const void* residual = nullptr;  // (M, N) or null; may be y itself
  void* y = nullptr;               // (M, N)
  int64_t M = 0, N = 0, K = 0;
  float eps = 1e-5f;
  int activation = 0;  // on x before the LayerNorm: kSmallLinearNone, ...Gelu (exact), ...Relu
  // xPos on the output (no residual): columns [0, rot_width) are queries and [rot_width,
  // 2 rot_width) keys, heads of rot_head_dim; pair (2i, 2i+1) of a head, both rounded to the
  // dtype, becomes (x0 c - x1 s, x1 c + x0 s) with c, s = cos[m, i], sin[m, i] of the query's or
  // the key's tables ((M, rot_head_dim / 2) float32), as xpos_rotate_at computes it.
  const float* cos_q = nullptr;
  const float* sin_q = nullptr;
  const float* cos_k = nullptr;
  const float* sin_k = nullptr;
  int64_t rot_width = 0, rot_head_dim = 0;  // rot_width 0: no rotation
};

enum : int { kSmallLinearNone = 0, kSmallLinearGelu = 1, kSmallLinearRelu = 2 };
constexpr int64_t kSmallLinearMaxRows = 8;
// The rows of x are staged in shared memory: M K element_size bytes, at most this many.
constexpr int64_t kSmallLinearMaxStage = 96 * 1024;

// dtype: a KernelDtype code (kernel_dtype.h). stream: a cudaStream_t. On Hopper the kernel
// is launched early (programmatic dependent launch) and reads w before it waits for the
// kernels before it on the stream: w must not be written by the kernel just before it (the
// decode step's weights are constants); everything else is read after the wait.
void small_linear_launch(const SmallLinearParams& p, int dtype, void* stream);

}  // namespace longnet
