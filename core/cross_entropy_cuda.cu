// The chunked cross-entropy's row kernels (see cross_entropy_kernel.h): one block per row, the
// threads striding over its V logits; statistics in float32.
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "longnet/core/cross_entropy_kernel.h"
#include "longnet/core/cuda_convert.cuh"
#include "longnet/core/cuda_dispatch.cuh"

namespace longnet {
namespace {

constexpr int kThreads = 512;

// (m, s) <- the running max and the sum of exp(x - m) over both pairs.
__device__ __forceinline__ void lse_combine(float& m, float& s, float m2, float s2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;  // both empty (or every logit -inf so far)
  s = s * expf(m - mn) + s2 * expf(m2 - mn);
  m = mn;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) ce_forward_kernel(const CrossEntropyRowsParams p) {
  const int64_t row = blockIdx.x;
  const T* x = static_cast<const T*>(p.logits) + row * p.V;
  float m = -INFINITY, s = 0.f;
  for (int64_t j = threadIdx.x; j < p.V; j += kThreads) {
    const float v = to_float(x[j]);
    if (v > m) {
      s = (m == -INFINITY ? 0.f : s * expf(m - v)) + 1.f;
      m = v;
    } else if (v != -INFINITY) {
      s += expf(v - m);  // (v NaN: s becomes NaN, and so does the row's loss)
    }
  }
  for (int off = 16; off > 0; off >>= 1)
    lse_combine(m, s, __shfl_xor_sync(0xffffffffu, m, off), __shfl_xor_sync(0xffffffffu, s, off));
  __shared__ float sm[kThreads / 32], ss[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sm[warp] = m, ss[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) lse_combine(m, s, sm[w], ss[w]);
    const float lse = m + logf(s);
    const int64_t t = p.targets[row];
    const float picked = (t >= 0 && t < p.V) ? to_float(x[t]) : NAN;
    p.lse[row] = lse;
    p.loss[row] = lse - picked;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) ce_backward_kernel(const CrossEntropyRowsParams p) {
  const int64_t row = blockIdx.x;
  T* x = static_cast<T*>(p.logits) + row * p.V;
  const float lse = p.lse[row], scale = *p.scale;
  const int64_t t = p.targets[row];
  for (int64_t j = threadIdx.x; j < p.V; j += kThreads) {
    const float prob = expf(to_float(x[j]) - lse);
    x[j] = from_float<T>(scale * (j == t ? prob - 1.f : prob));
  }
}

void launch_check(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("cross-entropy ") + what +
                             " kernel: launch: " + cudaGetErrorString(e));
}

}  // namespace

void cross_entropy_rows_forward_launch(const CrossEntropyRowsParams& p, int dtype, void* stream) {
  if (p.rows == 0) return;
  kernel_dtype_dispatch(dtype, "cross-entropy forward", [&](auto tag) {
    using T = decltype(tag);
    ce_forward_kernel<T>
        <<<static_cast<unsigned>(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  launch_check("forward");
}

void cross_entropy_rows_backward_launch(const CrossEntropyRowsParams& p, int dtype, void* stream) {
  if (p.rows == 0) return;
  kernel_dtype_dispatch(dtype, "cross-entropy backward", [&](auto tag) {
    using T = decltype(tag);
    ce_backward_kernel<T>
        <<<static_cast<unsigned>(p.rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  });
  launch_check("backward");
}

}  // namespace longnet
