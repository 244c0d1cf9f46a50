// The xPos rotation in one pass (see xpos_kernel.h): each thread rotates V interleaved pairs of
// one (token, head) row in float32, with 16-byte loads and stores when the layout allows.
// Memory-bound: x is read once and y written once; the tables are shared by every head.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "longnet/core/cuda_convert.cuh"
#include "longnet/core/cuda_dispatch.cuh"
#include "longnet/core/xpos_kernel.h"

namespace longnet {
namespace {

// K elements of T as whole 16-byte words when VEC (K * sizeof(T) a multiple of 16 and the pointer
// 16-byte aligned), else one by one.
template <typename T, int K, bool VEC>
struct Chunk {
  T v[K];
  __device__ __forceinline__ void load(const T* p) {
    if constexpr (VEC) {
      static_assert(K * sizeof(T) % 16 == 0, "vector chunk must be whole 16-byte words");
#pragma unroll
      for (int i = 0; i < int(K * sizeof(T) / 16); ++i)
        reinterpret_cast<uint4*>(v)[i] = reinterpret_cast<const uint4*>(p)[i];
    } else {
#pragma unroll
      for (int i = 0; i < K; ++i) v[i] = p[i];
    }
  }
  __device__ __forceinline__ void store(T* p) const {
    if constexpr (VEC) {
#pragma unroll
      for (int i = 0; i < int(K * sizeof(T) / 16); ++i)
        reinterpret_cast<uint4*>(p)[i] = reinterpret_cast<const uint4*>(v)[i];
    } else {
#pragma unroll
      for (int i = 0; i < K; ++i) p[i] = v[i];
    }
  }
};

// Blocks walk tokens (b, n); a block's threads cover the H * D / (2 V) pair groups of a token.
template <typename T, int V, bool VEC>
__global__ void xpos_rotate_kernel(XposRotateParams p) {
  // Not __restrict__: y may be x itself (the backward rotates a gradient in place; every chunk
  // is read by the thread that then writes it).
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const int64_t half = p.D / 2;
  const int groups = static_cast<int>(half / V);  // pair groups per head
  const int per_token = static_cast<int>(p.H) * groups;
  for (int64_t token = blockIdx.x; token < p.B * p.N; token += gridDim.x) {
    const int64_t b = token / p.N, n = token - b * p.N;
    const T* xt = x + b * p.stride_b + n * p.stride_n;
    T* yt = y + b * p.y_stride_b + n * p.y_stride_n;
    const float* ct = p.cos + n * half;
    const float* st = p.sin + n * half;
    for (int j = threadIdx.x; j < per_token; j += blockDim.x) {
      const int h = j / groups, g = j - h * groups;
      Chunk<T, 2 * V, VEC> in;
      in.load(xt + h * p.stride_h + 2 * V * g);
      Chunk<T, 2 * V, VEC> out;
#pragma unroll
      for (int i = 0; i < V; ++i) {
        const float c = __ldg(ct + V * g + i), s = p.sign * __ldg(st + V * g + i);
        const float x0 = to_float(in.v[2 * i]), x1 = to_float(in.v[2 * i + 1]);
        out.v[2 * i] = from_float<T>(x0 * c - x1 * s);
        out.v[2 * i + 1] = from_float<T>(x1 * c + x0 * s);
      }
      out.store(yt + h * p.y_stride_h + 2 * V * g);
    }
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("xPos kernel: ") + what + ": " + cudaGetErrorString(e));
}

template <typename T, int V, bool VEC>
void launch_with(const XposRotateParams& p, cudaStream_t stream) {
  const int per_token = static_cast<int>(p.H * (p.D / 2 / V));
  const int threads = std::min(256, (per_token + 31) / 32 * 32);
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute");
  const int64_t per_sm = std::max(1, 2048 / threads);
  const int blocks = static_cast<int>(std::min<int64_t>(p.B * p.N, int64_t(sms) * per_sm));
  xpos_rotate_kernel<T, V, VEC><<<blocks, threads, 0, stream>>>(p);
  check(cudaGetLastError(), "launch");
}

template <typename T>
void launch(const XposRotateParams& p, cudaStream_t stream) {
  if (p.B * p.N == 0) return;
  // 4 pairs (8 elements) per thread with 16-byte words when every row start is aligned.
  constexpr int64_t kWord = 16 / sizeof(T);
  const bool aligned = p.D % 8 == 0 && p.D % kWord == 0 && p.stride_b % kWord == 0 &&
                       p.stride_n % kWord == 0 && p.stride_h % kWord == 0 &&
                       p.y_stride_b % kWord == 0 && p.y_stride_n % kWord == 0 &&
                       p.y_stride_h % kWord == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(p.y) % 16 == 0;
  if (aligned) return launch_with<T, 4, true>(p, stream);
  if (p.D % 8 == 0) return launch_with<T, 4, false>(p, stream);
  return launch_with<T, 1, false>(p, stream);
}

}  // namespace

void xpos_rotate_launch(const XposRotateParams& p, int dtype, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  kernel_dtype_dispatch(dtype, "xPos kernel", [&](auto t) { launch<decltype(t)>(p, s); });
}

}  // namespace longnet
