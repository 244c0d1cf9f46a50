// Fused LayerNorm kernels (see layer_norm_kernel.h). Rows of up to kLayerNormMaxCachedC columns
// are held in registers by one warp (or four, for rows over 1024): the forward reads its input
// once, and the backward reads x and dy once for the input gradient and the gamma and beta
// gradients' per-team partial sums together. Wider rows take multi-pass kernels: a warp per row
// (two-pass statistics) and a column-slab reduction for gamma and beta. Statistics and arithmetic
// in float32; input and output dtypes are independent, so a float32 residual stream normalises
// straight into the bfloat16 a following GEMM reads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "longnet/core/cuda_convert.cuh"
#include "longnet/core/cuda_dispatch.cuh"
#include "longnet/core/cuda_launch.cuh"
#include "longnet/core/layer_norm_kernel.h"

namespace longnet {
namespace {

constexpr int kWarps = 8;  // warps per block

// The rows a warp walks when each warp of the grid takes whole rows in turn, and its lane.
struct WarpRows {
  int lane;
  int64_t first, step;
};
__device__ __forceinline__ WarpRows warp_rows() {
  return {static_cast<int>(threadIdx.x & 31), int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5),
          int64_t(gridDim.x) * kWarps};
}

// Four consecutive elements: loaded and stored as one vector (Raw), converted to and from float.
template <typename T>
struct Four;
template <>
struct Four<float> {
  using Raw = float4;
  static __device__ __forceinline__ Raw load_raw(const float* p) {
    return *reinterpret_cast<const float4*>(p);
  }
  static __device__ __forceinline__ void store_raw(float* p, Raw r) {
    *reinterpret_cast<float4*>(p) = r;
  }
  static __device__ __forceinline__ void unpack(Raw r, float* v) {
    v[0] = r.x, v[1] = r.y, v[2] = r.z, v[3] = r.w;
  }
  static __device__ __forceinline__ Raw pack(const float* v) {
    return make_float4(v[0], v[1], v[2], v[3]);
  }
};
template <typename H>
struct FourHalfLike {
  using Raw = uint2;
  static __device__ __forceinline__ Raw load_raw(const H* p) {
    return *reinterpret_cast<const uint2*>(p);
  }
  static __device__ __forceinline__ void store_raw(H* p, Raw r) {
    *reinterpret_cast<uint2*>(p) = r;
  }
  static __device__ __forceinline__ void unpack(Raw r, float* v) {
    const H* h = reinterpret_cast<const H*>(&r);
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = to_float(h[i]);
  }
  static __device__ __forceinline__ Raw pack(const float* v) {
    Raw r;
    H* h = reinterpret_cast<H*>(&r);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = from_float<H>(v[i]);
    return r;
  }
};
template <>
struct Four<__half> : FourHalfLike<__half> {};
template <>
struct Four<__nv_bfloat16> : FourHalfLike<__nv_bfloat16> {};

// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), and its derivative, as ATen computes them in
// float32.
__device__ __forceinline__ float gelu(float x) {
  return x * 0.5f * (1.0f + erff(x * 0.70710678118654752f));
}
__device__ __forceinline__ float gelu_grad(float x) {
  const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  return cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

template <typename T>
__device__ __forceinline__ void load4(const T* p, float* v) {
  Four<T>::unpack(Four<T>::load_raw(p), v);
}
template <typename T>
__device__ __forceinline__ void store4(T* p, const float* v) {
  Four<T>::store_raw(p, Four<T>::pack(v));
}

template <typename Tin, typename Tout>
__global__ void ln_forward_kernel(LayerNormParams p) {
  const auto [lane, first, step] = warp_rows();
  const float inv_c = 1.0f / float(p.C);
  for (int64_t row = first; row < p.rows; row += step) {
    const Tin* x = static_cast<const Tin*>(p.x) + row * p.C;
    Tout* y = static_cast<Tout*>(p.y) + row * p.C;
    float v[4], s = 0.0f;
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      load4(x + c, v);
      s += (v[0] + v[1]) + (v[2] + v[3]);
    }
    const float mean = warp_sum(s) * inv_c;
    float q = 0.0f;
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      load4(x + c, v);
#pragma unroll
      for (int i = 0; i < 4; ++i) q += (v[i] - mean) * (v[i] - mean);
    }
    const float rstd = rsqrtf(warp_sum(q) * inv_c + p.eps);
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      float g[4], b[4], out[4];
      load4(x + c, v);
      load4(p.gamma + c, g);
      load4(p.beta + c, b);
#pragma unroll
      for (int i = 0; i < 4; ++i) out[i] = (v[i] - mean) * rstd * g[i] + b[i];
      store4(y + c, out);
    }
    if (lane == 0) p.mean[row] = mean, p.rstd[row] = rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
template <typename Tin, typename Tout>
__global__ void ln_backward_dx_kernel(LayerNormParams p) {
  const auto [lane, first, step] = warp_rows();
  const float inv_c = 1.0f / float(p.C);
  for (int64_t row = first; row < p.rows; row += step) {
    const Tin* x = static_cast<const Tin*>(p.x) + row * p.C;
    const Tout* dy = static_cast<const Tout*>(p.dy) + row * p.C;
    Tin* dx = static_cast<Tin*>(p.dx) + row * p.C;
    const float mean = p.mean[row], rstd = p.rstd[row];
    float a = 0.0f, b = 0.0f, v[4], d[4], g[4];
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      load4(x + c, v);
      load4(dy + c, d);
      load4(p.gamma + c, g);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float gi = d[i] * g[i];
        a += gi;
        b += gi * (v[i] - mean) * rstd;
      }
    }
    a = warp_sum(a) * inv_c;
    b = warp_sum(b) * inv_c;
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      float out[4];
      load4(x + c, v);
      load4(dy + c, d);
      load4(p.gamma + c, g);
#pragma unroll
      for (int i = 0; i < 4; ++i) out[i] = rstd * (d[i] * g[i] - a - (v[i] - mean) * rstd * b);
      store4(dx + c, out);
    }
  }
}

// The same two kernels with each row held in registers: every input is read from memory once,
// all of a row's loads in flight together. WPR warps share a row (one for rows up to 1024, four
// for wider ones, so that a lane holds at most 8 vectors of 4); lane l of the row's warp k holds
// columns 4 (32 k + l) + 128 WPR j, j < NV. They also fuse the residual add (forward: x + res,
// written to sum) and its gradient (backward: + dsum, and a copy of dx into dres); see
// layer_norm_kernel.h.
template <int WPR>
struct RowTeam {
  int lane, sub;  // lane, and which of the row's WPR warps
  int64_t row;    // this warp's row in the current round (may be >= rows: then idle)
  int64_t col0;   // the first column this lane holds
  float* red;     // shared [kWarps] scratch for the cross-warp sums
  // The sum of v over the row's lanes and warps (every warp of the block must call it).
  __device__ __forceinline__ float sum(float v) const {
    v = warp_sum(v);
    if constexpr (WPR == 1) {
      return v;
    } else {
      const int warp = threadIdx.x >> 5, first = warp - sub;
      if (lane == 0) red[warp] = v;
      __syncthreads();
      float t = 0.0f;
#pragma unroll
      for (int k = 0; k < WPR; ++k) t += red[first + k];
      __syncthreads();
      return t;
    }
  }
  __device__ __forceinline__ int64_t col(int j) const {
    return col0 + 128 * WPR * j;
  }
};

// Runs body(team) for every row of the block's rounds; whole blocks take rounds of kWarps / WPR
// rows in turn, so that every warp reaches the same barriers. Returns the team (its columns).
template <int WPR, typename F>
__device__ __forceinline__ RowTeam<WPR> for_each_row(const LayerNormParams& p, float* red,
                                                     F&& body) {
  constexpr int kRowsPerRound = kWarps / WPR;
  const int warp = threadIdx.x >> 5;
  RowTeam<WPR> t;
  t.lane = threadIdx.x & 31;
  t.sub = warp % WPR;
  t.col0 = 4 * (t.lane + 32 * t.sub);
  t.red = red;
  for (int64_t r0 = int64_t(blockIdx.x) * kRowsPerRound; r0 < p.rows;
       r0 += int64_t(gridDim.x) * kRowsPerRound) {
    t.row = r0 + warp / WPR;
    body(t);
  }
  return t;
}

template <typename Tin, typename Tout, int NV, int WPR>
__global__ void ln_forward_cached_kernel(LayerNormParams p) {
  using In = Four<Tin>;
  __shared__ float red[kWarps];
  const float inv_c = 1.0f / float(p.C);
  for_each_row<WPR>(p, red, [&](const RowTeam<WPR>& t) {
    const bool live = t.row < p.rows;
    const int64_t base = t.row * p.C;
    typename In::Raw xr[NV];
#pragma unroll
    for (int j = 0; j < NV; ++j)
      if (live && t.col(j) < p.C)
        xr[j] = In::load_raw(static_cast<const Tin*>(p.x) + base + t.col(j));
    float v[4], s = 0.0f;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      if (!live || t.col(j) >= p.C) continue;
      In::unpack(xr[j], v);
      if (p.gelu_out != nullptr) {
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] = gelu(v[i]);
        xr[j] = In::pack(v);  // gelu(h) as stored, which is what is normalised
        In::store_raw(static_cast<Tin*>(p.gelu_out) + base + t.col(j), xr[j]);
        In::unpack(xr[j], v);
      } else if (p.res != nullptr) {
        float r[4];
        load4(static_cast<const Tout*>(p.res) + base + t.col(j), r);
#pragma unroll
        for (int i = 0; i < 4; ++i) v[i] += r[i];
        xr[j] = In::pack(v);  // the sum as stored, which is what is normalised
        In::store_raw(static_cast<Tin*>(p.sum) + base + t.col(j), xr[j]);
        In::unpack(xr[j], v);
      }
      s += (v[0] + v[1]) + (v[2] + v[3]);
    }
    const float mean = t.sum(s) * inv_c;
    float q = 0.0f;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      if (!live || t.col(j) >= p.C) continue;
      In::unpack(xr[j], v);
#pragma unroll
      for (int i = 0; i < 4; ++i) q += (v[i] - mean) * (v[i] - mean);
    }
    const float rstd = rsqrtf(t.sum(q) * inv_c + p.eps);
    if (!live) return;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      const int64_t c = t.col(j);
      if (c >= p.C) continue;
      float g[4], b[4], out[4];
      In::unpack(xr[j], v);
      load4(p.gamma + c, g);
      load4(p.beta + c, b);
#pragma unroll
      for (int i = 0; i < 4; ++i) out[i] = (v[i] - mean) * rstd * g[i] + b[i];
      store4(static_cast<Tout*>(p.y) + base + c, out);
    }
    if (t.lane == 0 && t.sub == 0) p.mean[t.row] = mean, p.rstd[t.row] = rstd;
  });
}

// The gamma and beta gradients' per-lane partial sums live in shared memory, each thread's own
// slots (acc[k * threads + thread], no sharing, no atomics), not in 2 x 4 NV registers: that keeps
// the kernel within 128 registers, two blocks per SM, with the row's x, dy and extra input (dsum
// or gelu_in, at most one of them) all loaded before the row's reductions, so one round of memory
// latency per row instead of two.
template <typename Tin, typename Tout, int NV, int WPR>
__global__ void __launch_bounds__(32 * kWarps, 2) ln_backward_dx_cached_kernel(LayerNormParams p) {
  using In = Four<Tin>;
  using Out = Four<Tout>;
  __shared__ float red[kWarps];
  extern __shared__ float acc[];   // [2 * 4 * NV][nt]: gamma's sums, then beta's
  constexpr int nt = 32 * kWarps;  // (the launch's blockDim.x)
  float* pg = acc + threadIdx.x;
  float* pb = acc + 4 * NV * nt + threadIdx.x;
#pragma unroll
  for (int k = 0; k < 4 * NV; ++k) pg[k * nt] = pb[k * nt] = 0.0f;
  const float inv_c = 1.0f / float(p.C);
  const Tin* extra = static_cast<const Tin*>(p.dsum != nullptr ? p.dsum : p.gelu_in);
  const auto team = for_each_row<WPR>(p, red, [&](const RowTeam<WPR>& t) {
    const bool live = t.row < p.rows;
    const int64_t base = t.row * p.C;
    typename In::Raw xr[NV], er[NV];
    typename Out::Raw dr[NV];
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      if (!live || t.col(j) >= p.C) continue;
      xr[j] = In::load_raw(static_cast<const Tin*>(p.x) + base + t.col(j));
      dr[j] = Out::load_raw(static_cast<const Tout*>(p.dy) + base + t.col(j));
      if (extra != nullptr) er[j] = In::load_raw(extra + base + t.col(j));
    }
    const float mean = live ? p.mean[t.row] : 0.0f, rstd = live ? p.rstd[t.row] : 0.0f;
    float a = 0.0f, b = 0.0f, v[4], d[4], g[4];
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      if (!live || t.col(j) >= p.C) continue;
      In::unpack(xr[j], v);
      Out::unpack(dr[j], d);
      load4(p.gamma + t.col(j), g);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float gi = d[i] * g[i], xhat = (v[i] - mean) * rstd;
        a += gi;
        b += gi * xhat;
        pg[(4 * j + i) * nt] += d[i] * xhat;
        pb[(4 * j + i) * nt] += d[i];
      }
    }
    a = t.sum(a) * inv_c;
    b = t.sum(b) * inv_c;
    if (!live) return;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
      const int64_t c = t.col(j);
      if (c >= p.C) continue;
      float out[4], e[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (extra != nullptr) In::unpack(er[j], e);
      In::unpack(xr[j], v);
      Out::unpack(dr[j], d);
      load4(p.gamma + c, g);
#pragma unroll
      for (int i = 0; i < 4; ++i) out[i] = rstd * (d[i] * g[i] - a - (v[i] - mean) * rstd * b);
      if (p.gelu_in != nullptr) {
#pragma unroll
        for (int i = 0; i < 4; ++i) out[i] = to_float(from_float<Tin>(out[i])) * gelu_grad(e[i]);
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i) out[i] += e[i];  // dsum (0 without one)
      }
      store4(static_cast<Tin*>(p.dx) + base + c, out);
      if (p.dres != nullptr) store4(static_cast<Tout*>(p.dres) + base + c, out);
    }
  });
  // One partial row per team (row_chunks = blocks x kWarps / WPR), summed on the host side.
  const int64_t part = int64_t(blockIdx.x) * (kWarps / WPR) + (threadIdx.x >> 5) / WPR;
#pragma unroll
  for (int j = 0; j < NV; ++j) {
    const int64_t c = team.col(j);
    if (c >= p.C) continue;
    float sg[4], sb[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) sg[i] = pg[(4 * j + i) * nt], sb[i] = pb[(4 * j + i) * nt];
    store4(p.dgamma_part + part * p.C + c, sg);
    store4(p.dbeta_part + part * p.C + c, sb);
  }
}

// Block (32 x kWarps threads) = one slab of 128 columns x one chunk of rows: each thread sums
// 4 columns over the chunk's rows (warps interleaved), then the warps' sums are added in shared
// memory and one partial row per chunk is written.
template <typename Tin, typename Tout>
__global__ void ln_backward_params_kernel(LayerNormParams p) {
  __shared__ float sg[kWarps][128], sb[kWarps][128];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = int64_t(blockIdx.x) * 128 + 4 * lane;
  const int64_t per_chunk = (p.rows + p.row_chunks - 1) / p.row_chunks;
  const int64_t r0 = int64_t(blockIdx.y) * per_chunk;
  const int64_t r1 = r0 + per_chunk < p.rows ? r0 + per_chunk : p.rows;
  float dg[4] = {0, 0, 0, 0}, db[4] = {0, 0, 0, 0};
  if (c < p.C) {
    for (int64_t row = r0 + warp; row < r1; row += kWarps) {
      float v[4], d[4];
      load4(static_cast<const Tin*>(p.x) + row * p.C + c, v);
      load4(static_cast<const Tout*>(p.dy) + row * p.C + c, d);
      const float mean = p.mean[row], rstd = p.rstd[row];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        dg[i] += d[i] * (v[i] - mean) * rstd;
        db[i] += d[i];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) sg[warp][4 * lane + i] = dg[i], sb[warp][4 * lane + i] = db[i];
  __syncthreads();
  for (int j = threadIdx.x; j < 128; j += blockDim.x) {
    const int64_t col = int64_t(blockIdx.x) * 128 + j;
    if (col >= p.C) continue;
    float g = 0.0f, b = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) g += sg[w][j], b += sb[w][j];
    p.dgamma_part[int64_t(blockIdx.y) * p.C + col] = g;
    p.dbeta_part[int64_t(blockIdx.y) * p.C + col] = b;
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("LayerNorm kernel: ") + what + ": " +
                             cudaGetErrorString(e));
}

int sm_count() {
  return cuda_device_attribute(cudaDevAttrMultiProcessorCount);
}

int row_blocks(int64_t rows) {
  return static_cast<int>(std::min<int64_t>((rows + kWarps - 1) / kWarps, int64_t(sm_count()) * 8));
}

// Calls f(NV, WPR) as std::integral_constants for the register-cached kernels that hold a row of
// C (the fewest vectors per lane: one warp per row up to 1024 columns, four up to 4096), or with
// NV = 0 (the multi-pass kernels) for wider rows.
template <typename F>
void with_cached_width(int64_t C, F&& f) {
  static_assert(kLayerNormMaxCachedC == 4 * 128 * 8,
                "the widths below end at kLayerNormMaxCachedC");
  using std::integral_constant;
  const int64_t nv = (C + 127) / 128;
  if (nv <= 1) return f(integral_constant<int, 1>(), integral_constant<int, 1>());
  if (nv <= 2) return f(integral_constant<int, 2>(), integral_constant<int, 1>());
  if (nv <= 4) return f(integral_constant<int, 4>(), integral_constant<int, 1>());
  if (nv <= 6) return f(integral_constant<int, 6>(), integral_constant<int, 1>());
  if (nv <= 8) return f(integral_constant<int, 8>(), integral_constant<int, 1>());
  const int64_t nv4 = (C + 511) / 512;
  if (nv4 <= 4) return f(integral_constant<int, 4>(), integral_constant<int, 4>());
  if (nv4 <= 6) return f(integral_constant<int, 6>(), integral_constant<int, 4>());
  if (nv4 <= 8) return f(integral_constant<int, 8>(), integral_constant<int, 4>());
  return f(integral_constant<int, 0>(), integral_constant<int, 1>());
}

// Blocks for the register-cached kernels: rounds of kWarps / WPR rows.
int cached_blocks(int64_t rows, int wpr) {
  const int64_t per_block = kWarps / wpr;
  return static_cast<int>(
      std::min<int64_t>((rows + per_block - 1) / per_block, int64_t(sm_count()) * 8));
}

template <typename Tin, typename Tout>
void forward_with(const LayerNormParams& p, cudaStream_t s) {
  with_cached_width(p.C, [&](auto nv, auto wpr) {
    constexpr int NV = decltype(nv)::value, WPR = decltype(wpr)::value;
    if constexpr (NV == 0)
      ln_forward_kernel<Tin, Tout><<<row_blocks(p.rows), 32 * kWarps, 0, s>>>(p);
    else
      ln_forward_cached_kernel<Tin, Tout, NV, WPR>
          <<<cached_blocks(p.rows, WPR), 32 * kWarps, 0, s>>>(p);
  });
  check(cudaGetLastError(), "forward launch");
}

template <typename Tin, typename Tout>
void backward_with(const LayerNormParams& p, cudaStream_t s) {
  with_cached_width(p.C, [&](auto nv, auto wpr) {
    constexpr int NV = decltype(nv)::value, WPR = decltype(wpr)::value;
    if constexpr (NV == 0) {
      ln_backward_dx_kernel<Tin, Tout><<<row_blocks(p.rows), 32 * kWarps, 0, s>>>(p);
      check(cudaGetLastError(), "input-gradient launch");
      const dim3 grid(static_cast<unsigned>((p.C + 127) / 128),
                      static_cast<unsigned>(p.row_chunks));
      ln_backward_params_kernel<Tin, Tout><<<grid, 32 * kWarps, 0, s>>>(p);
      check(cudaGetLastError(), "parameter-gradient launch");
    } else {
      // (the gamma and beta gradients' partial rows come out of the same kernel)
      const int blocks = cached_blocks(p.rows, WPR);
      if (p.row_chunks != int64_t(blocks) * (kWarps / WPR))
        throw std::invalid_argument(
            "LayerNorm kernel: row_chunks does not match the launch; "
            "take it from layer_norm_row_chunks");
      auto kernel = ln_backward_dx_cached_kernel<Tin, Tout, NV, WPR>;
      // (always opted in: with the kernel's static scratch, even 48 KiB is over the default)
      const size_t smem = sizeof(float) * 2 * 4 * NV * 32 * kWarps;
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
            "cudaFuncSetAttribute");
      kernel<<<blocks, 32 * kWarps, smem, s>>>(p);
      check(cudaGetLastError(), "backward launch");
    }
  });
}

// Calls F<Tin, Tout> for the dtype codes of input and output (kernel_dtype.h).
template <template <typename, typename> class F>
void dispatch(const LayerNormParams& p, int in_dtype, int out_dtype, cudaStream_t s) {
  kernel_dtype_dispatch(in_dtype, "LayerNorm kernel input", [&](auto in) {
    kernel_dtype_dispatch(out_dtype, "LayerNorm kernel output",
                          [&](auto out) { F<decltype(in), decltype(out)>::run(p, s); });
  });
}

template <typename Tin, typename Tout>
struct Forward {
  static void run(const LayerNormParams& p, cudaStream_t s) { forward_with<Tin, Tout>(p, s); }
};
template <typename Tin, typename Tout>
struct Backward {
  static void run(const LayerNormParams& p, cudaStream_t s) { backward_with<Tin, Tout>(p, s); }
};

}  // namespace

int64_t layer_norm_row_chunks(int64_t rows, int64_t C) {
  int wpr = 0;  // the register-cached kernels: one partial row per team of WPR warps
  with_cached_width(C,
                    [&](auto nv, auto w) { wpr = decltype(nv)::value ? decltype(w)::value : 0; });
  if (wpr > 0) return rows == 0 ? 0 : int64_t(cached_blocks(rows, wpr)) * (kWarps / wpr);
  // The multi-pass kernels: about four blocks per SM over all column slabs, at least 64 rows per
  // chunk.
  const int64_t slabs = (C + 127) / 128;
  const int64_t want = std::max<int64_t>(1, int64_t(sm_count()) * 4 / slabs);
  return std::max<int64_t>(1, std::min(want, (rows + 63) / 64));
}

void layer_norm_forward_launch(const LayerNormParams& p, int in_dtype, int out_dtype,
                               void* stream) {
  if ((p.res != nullptr) != (p.sum != nullptr) ||
      ((p.res != nullptr || p.gelu_out != nullptr) && p.C > kLayerNormMaxCachedC) ||
      (p.res != nullptr && p.gelu_out != nullptr))
    throw std::invalid_argument(
        "LayerNorm kernel: a fused residual (res and sum) or GELU (not both) needs at most "
        "kLayerNormMaxCachedC columns");
  if (p.rows == 0) return;
  dispatch<Forward>(p, in_dtype, out_dtype, static_cast<cudaStream_t>(stream));
}

void layer_norm_backward_launch(const LayerNormParams& p, int in_dtype, int out_dtype,
                                void* stream) {
  if ((p.dsum != nullptr || p.dres != nullptr || p.gelu_in != nullptr) &&
      (p.C > kLayerNormMaxCachedC ||
       (p.gelu_in != nullptr && (p.dres != nullptr || p.dsum != nullptr))))
    throw std::invalid_argument(
        "LayerNorm kernel: a fused residual gradient or GELU gradient (not both) needs at most "
        "kLayerNormMaxCachedC columns");
  if (p.rows == 0) return;
  dispatch<Backward>(p, in_dtype, out_dtype, static_cast<cudaStream_t>(stream));
}

}  // namespace longnet
