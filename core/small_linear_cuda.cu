// The decode step's fused small-batch linear (see small_linear_kernel.h). At batch 1 a decode
// step is latency-bound: each LayerNorm and each skinny GEMM is a kernel of a few microseconds
// that moves almost nothing. This kernel does a LayerNorm (with an activation in front), the
// product, the bias and the residual add in one launch, and starts streaming its weights before
// the LayerNorm is done.
//
// Each warp computes whole output columns: lane l reads 16-byte vectors l, l + 32, ... of a weight
// row and takes their dot products with every staged row of x, then the warp sums its lanes. A
// block of kWarps warps first stages the M rows of x in shared memory (activation, LayerNorm,
// rounding to the dtype, as the separate kernels would store them); the first weight chunk of
// each warp is already in flight by then.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "longnet/core/cuda_convert.cuh"
#include "longnet/core/cuda_dispatch.cuh"
#include "longnet/core/cuda_launch.cuh"
#include "longnet/core/small_linear_kernel.h"

namespace longnet {
namespace {

// Programmatic dependent launch (sm_90 and up): each launch lets the kernel after it start early,
// so that a chain of these kernels overlaps one's weight loads with the previous one's tail.
#define LONGNET_SMALL_LINEAR_PDL 1

constexpr int kWarps = 8;  // warps per block, one output column each at a time
constexpr int kChunk = 8;  // 16-byte weight vectors a lane has in flight

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("small linear kernel: ") + what + ": " +
                             cudaGetErrorString(e));
}

// The 16-byte vector of V elements of T, unpacked to and packed from float.
template <typename T>
struct Vec {
  static constexpr int V = 16 / sizeof(T);
  static __device__ __forceinline__ void unpack(const uint4& r, float* f) {
    const T* e = reinterpret_cast<const T*>(&r);
#pragma unroll
    for (int i = 0; i < V; ++i) f[i] = to_float(e[i]);
  }
  static __device__ __forceinline__ uint4 pack(const float* f) {
    uint4 r;
    T* e = reinterpret_cast<T*>(&r);
#pragma unroll
    for (int i = 0; i < V; ++i) e[i] = from_float<T>(f[i]);
    return r;
  }
};

__device__ __forceinline__ float activate(float v, int activation) {
  if (activation == kSmallLinearGelu) return v * 0.5f * (1.0f + erff(v * 0.70710678118654752f));
  if (activation == kSmallLinearRelu) return v > 0.0f ? v : 0.0f;
  return v;
}

// Up to MR rows (MR a compile-time bound on p.M, for the accumulators in registers).
template <typename T, int MR>
__global__ void __launch_bounds__(32 * kWarps) small_linear_kernel(SmallLinearParams p) {
  using VT = Vec<T>;
  constexpr int V = VT::V;
  extern __shared__ __align__(16) unsigned char stage_raw[];
  uint4* xs = reinterpret_cast<uint4*>(stage_raw);  // (M, K / V) vectors
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int M = static_cast<int>(p.M);
  const int64_t nvec = p.K / V, N = p.N;
  const uint4* W = static_cast<const uint4*>(p.w);
  const int64_t step = int64_t(gridDim.x) * kWarps;
  int64_t n = int64_t(blockIdx.x) * kWarps + warp;

  uint4 wv[kChunk];
  auto load = [&](int64_t col, int64_t c0) {
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      const int64_t i = c0 + j * 32 + lane;
      wv[j] = col < N && i < nvec ? __ldg(W + col * nvec + i) : make_uint4(0, 0, 0, 0);
    }
  };
  load(p.rot_width ? 2 * n : n, 0);  // in flight while the rows are staged
#if LONGNET_SMALL_LINEAR_PDL
  // The weights are constants: the loads above may run before the previous kernel has finished.
  // Let the next kernel launch now (its blocks wait in turn), then wait for the previous
  // kernel's writes (x, the residual) to be complete and visible.
  pdl_trigger();
  pdl_wait();
#endif

  // Stage act(x), rounded to T.
  const uint4* X = static_cast<const uint4*>(p.x);
  for (int64_t i = threadIdx.x; i < M * nvec; i += blockDim.x) {
    uint4 r = X[i];
    if (p.activation != kSmallLinearNone) {
      float f[V];
      VT::unpack(r, f);
#pragma unroll
      for (int e = 0; e < V; ++e) f[e] = activate(f[e], p.activation);
      r = VT::pack(f);
    }
    xs[i] = r;
  }
  __syncthreads();
  // LayerNorm each row in place: float32 statistics (two passes), output rounded to T. Every
  // thread of the block takes its vectors of every row, and the sums are reduced over the block.
  if (p.gamma != nullptr) {
    __shared__ float red[2][kWarps][MR];
    __shared__ float stat[2][MR];  // mean, rstd
    const float inv_k = 1.0f / float(p.K);
    float part[MR];
    auto block_sum = [&](int which) {  // part[m] summed over the block into red[which]
#pragma unroll
      for (int m = 0; m < MR; ++m) {
        const float v = warp_sum(part[m]);
        if (lane == 0) red[which][warp][m] = v;
      }
      __syncthreads();
      if (threadIdx.x < MR) {
        float t = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) t += red[which][w][threadIdx.x];
        stat[which][threadIdx.x] = t;
      }
      __syncthreads();
    };
    float f[V];
    // part[m] = the sum of term(m, x) over this thread's elements of row m, then over the block.
    auto row_sums = [&](auto term, int which) {
#pragma unroll
      for (int m = 0; m < MR; ++m) part[m] = 0.0f;
      for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
#pragma unroll
        for (int m = 0; m < MR; ++m) {
          if (m >= M) break;
          VT::unpack(xs[m * nvec + i], f);
#pragma unroll
          for (int e = 0; e < V; ++e) part[m] += term(m, f[e]);
        }
      }
      block_sum(which);
    };
    row_sums([](int, float v) { return v; }, 0);
    float mean[MR];
#pragma unroll
    for (int m = 0; m < MR; ++m) mean[m] = stat[0][m] * inv_k;
    row_sums([&](int m, float v) { return (v - mean[m]) * (v - mean[m]); }, 1);
    for (int64_t i = threadIdx.x; i < nvec; i += blockDim.x) {
      float g[V], b[V];
#pragma unroll
      for (int e = 0; e < V; ++e)
        g[e] = __ldg(p.gamma + i * V + e), b[e] = __ldg(p.beta + i * V + e);
#pragma unroll
      for (int m = 0; m < MR; ++m) {
        if (m >= M) break;
        const float rstd = rsqrtf(stat[1][m] * inv_k + p.eps);
        VT::unpack(xs[m * nvec + i], f);
#pragma unroll
        for (int e = 0; e < V; ++e) f[e] = (f[e] - mean[m]) * rstd * g[e] + b[e];
        xs[m * nvec + i] = VT::pack(f);
      }
    }
    __syncthreads();
  }

  // acc[m] = the dot product of weight row col with staged row m, summed over the warp (every
  // lane gets it). Its first chunk is in wv already; prefetches the first chunk of `next`.
  auto dot = [&](int64_t col, int64_t next, float(&acc)[MR]) {
#pragma unroll
    for (int m = 0; m < MR; ++m) acc[m] = 0.0f;
    for (int64_t c0 = 0;;) {
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const int64_t i = c0 + j * 32 + lane;
        if (i < nvec) {
          float wf[V], xf[V];
          VT::unpack(wv[j], wf);
#pragma unroll
          for (int m = 0; m < MR; ++m) {
            if (m < M) {
              VT::unpack(xs[m * nvec + i], xf);
#pragma unroll
              for (int e = 0; e < V; ++e) acc[m] = fmaf(wf[e], xf[e], acc[m]);
            }
          }
        }
      }
      c0 += 32 * kChunk;
      if (c0 < nvec) {
        load(col, c0);
      } else {
        load(next, 0);
        break;
      }
    }
#pragma unroll
    for (int m = 0; m < MR; ++m)
      if (m < M) acc[m] = warp_sum(acc[m]);
  };
  const T* bias = static_cast<const T*>(p.bias);
  const T* res = static_cast<const T*>(p.residual);
  T* y = static_cast<T*>(p.y);
  float acc[MR], acc1[MR];
  if (p.rot_width == 0) {
    for (; n < N; n += step) {
      dot(n, n + step, acc);
#pragma unroll
      for (int m = 0; m < MR; ++m) {
        if (m < M && lane == m) {
          const int64_t o = int64_t(m) * N + n;
          T out = from_float<T>(acc[m] + (bias ? to_float(bias[n]) : 0.0f));
          if (res) out = from_float<T>(to_float(out) + to_float(res[o]));
          y[o] = out;
        }
      }
    }
  } else {
    // Column pairs (2j, 2j + 1): warp w of the grid takes pairs w, w + step, ...
    const int64_t half = p.rot_head_dim / 2;
    for (int64_t j = n; 2 * j < N; j += step) {
      dot(2 * j, 2 * j + 1, acc);
      dot(2 * j + 1, 2 * (j + step), acc1);
      const int64_t col = 2 * j;
#pragma unroll
      for (int m = 0; m < MR; ++m) {
        if (m < M && lane == m) {
          const int64_t o = int64_t(m) * N + col;
          float x0 = to_float(from_float<T>(acc[m] + (bias ? to_float(bias[col]) : 0.0f)));
          float x1 = to_float(from_float<T>(acc1[m] + (bias ? to_float(bias[col + 1]) : 0.0f)));
          if (col < 2 * p.rot_width) {
            const bool key = col >= p.rot_width;
            const int64_t t = m * half + (col % p.rot_width % p.rot_head_dim) / 2;
            const float c = key ? p.cos_k[t] : p.cos_q[t], s = key ? p.sin_k[t] : p.sin_q[t];
            const float r0 = x0 * c - x1 * s, r1 = x1 * c + x0 * s;
            x0 = r0, x1 = r1;
          }
          y[o] = from_float<T>(x0);
          y[o + 1] = from_float<T>(x1);
        }
      }
    }
  }
}

template <typename T, int MR>
void launch_rows(const SmallLinearParams& p, cudaStream_t s) {
  auto kernel = small_linear_kernel<T, MR>;
  const size_t stage = size_t(p.M) * size_t(p.K) * sizeof(T);
  // Over 48 KiB with the kernel's static scratch needs the opt-in: set to the most the rows
  // can take (the same value on every call, whichever thread makes it).
  if (stage > 40 * 1024) {
    cudaFuncAttributes fa;
    check(cudaFuncGetAttributes(&fa, kernel), "cudaFuncGetAttributes");
    const size_t most = size_t(cuda_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin)) -
                        size_t(fa.sharedSizeBytes);
    if (stage > most)
      throw std::invalid_argument("small linear kernel: the rows need " + std::to_string(stage) +
                                  " bytes of shared memory; this GPU gives a block " +
                                  std::to_string(most));
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               int(std::min<size_t>(most, kSmallLinearMaxStage))),
          "cudaFuncSetAttribute");
  }
  // One column (or pair) per warp, but no more blocks than fit on the GPU at once: each block
  // stages the rows once, and a second wave would wait for the first.
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * kWarps, stage),
        "occupancy");
  const int64_t units = p.rot_width ? p.N / 2 : p.N;
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>(
             (units + kWarps - 1) / kWarps,
             int64_t(cuda_device_attribute(cudaDevAttrMultiProcessorCount)) * std::max(per_sm, 1)));
  check(launch_maybe_early(kernel, dim3(static_cast<unsigned>(blocks)), dim3(32 * kWarps), stage, s,
                           LONGNET_SMALL_LINEAR_PDL, p),
        "launch");
}

template <typename T>
void launch(const SmallLinearParams& p, cudaStream_t s) {
  if (p.M <= 1) return launch_rows<T, 1>(p, s);
  if (p.M <= 2) return launch_rows<T, 2>(p, s);
  if (p.M <= 4) return launch_rows<T, 4>(p, s);
  launch_rows<T, 8>(p, s);
}

}  // namespace

void small_linear_launch(const SmallLinearParams& p, int dtype, void* stream) {
  kernel_dtype_dispatch(dtype, "small linear kernel", [&](auto t) {
    using T = decltype(t);
    const int64_t V = 16 / int64_t(sizeof(T));
    if (p.M < 0 || p.M > kSmallLinearMaxRows || p.N < 0 || p.K <= 0 || p.K % V != 0 ||
        p.K > kSmallLinearMaxStage || p.M * p.K * int64_t(sizeof(T)) > kSmallLinearMaxStage ||
        reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || reinterpret_cast<uintptr_t>(p.w) % 16 != 0 ||
        (p.gamma == nullptr) != (p.beta == nullptr) || p.activation < kSmallLinearNone ||
        p.activation > kSmallLinearRelu ||
        (p.rot_width != 0 &&
         (p.rot_width < 0 || p.rot_head_dim < 2 || p.rot_head_dim % 2 != 0 ||
          p.rot_width % p.rot_head_dim != 0 || 2 * p.rot_width > p.N || p.N % 2 != 0 ||
          p.residual != nullptr || !p.cos_q || !p.sin_q || !p.cos_k || !p.sin_k)))
      throw std::invalid_argument(
          "small linear kernel: needs 0 <= M <= kSmallLinearMaxRows, K a positive multiple of "
          "16 / element size, x and w 16-byte aligned, M K elements within kSmallLinearMaxStage "
          "bytes, gamma with beta, "
          "a known activation, and for xPos whole heads of even size within an even N, four "
          "tables and no residual; got M " +
          std::to_string(p.M) + ", N " + std::to_string(p.N) + ", K " + std::to_string(p.K));
    if (p.M == 0 || p.N == 0) return;
    launch<T>(p, static_cast<cudaStream_t>(stream));
  });
}

}  // namespace longnet
