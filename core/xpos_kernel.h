// The xPos rotation kernel's launch interface (torch-free, so that nvcc never sees LibTorch
// headers). See xpos.h for the maths; xpos.cpp wraps it in an autograd function.
#pragma once

#include <cstdint>

namespace longnet {

// y[b, n, h, 2i]   = x0 * cos[n, i] - sign * x1 * sin[n, i]
// y[b, n, h, 2i+1] = x1 * cos[n, i] + sign * x0 * sin[n, i]      (x0, x1 = x[b, n, h, 2i, 2i+1])
// in float32. sign = +1 is the rotation, sign = -1 its transpose (the backward). x and y may
// have any strides over (b, n, h) but a contiguous last dimension (y's rows must not overlap);
// cos and sin are contiguous float32 (N, D/2).
struct XposRotateParams {
  const void* x = nullptr;
  void* y = nullptr;
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t B = 0, N = 0, H = 0, D = 0;
  int64_t stride_b = 0, stride_n = 0, stride_h = 0;        // of x, in elements
  int64_t y_stride_b = 0, y_stride_n = 0, y_stride_h = 0;  // of y, in elements
  float sign = 1.0f;
};

// dtype: 0 float32, 1 float16, 2 bfloat16. stream: a cudaStream_t.
void xpos_rotate_launch(const XposRotateParams& p, int dtype, void* stream);

}  // namespace longnet
