// Fused LayerNorm kernels (see layer_norm_kernel.h): a warp per row for the forward and for the
// input gradient (two-pass statistics, float32), and a column-slab reduction for the gamma and
// beta gradients. Input and output dtypes are independent, so a float32 residual stream
// normalises straight into the bfloat16 a following GEMM reads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/cuda_convert.cuh"
#include "core/layer_norm_kernel.h"

namespace longnet {
namespace {

constexpr int kWarps = 8;  // warps per block

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The rows a warp walks when each warp of the grid takes whole rows in turn, and its lane.
struct WarpRows {
  int lane;
  int64_t first, step;
};
__device__ __forceinline__ WarpRows warp_rows() {
  return {static_cast<int>(threadIdx.x & 31), int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5),
          int64_t(gridDim.x) * kWarps};
}

// Four consecutive elements to and from float.
template <typename T>
struct Four;
template <>
struct Four<float> {
  static __device__ __forceinline__ void load(const float* p, float* v) {
    const float4 r = *reinterpret_cast<const float4*>(p);
    v[0] = r.x, v[1] = r.y, v[2] = r.z, v[3] = r.w;
  }
  static __device__ __forceinline__ void store(float* p, const float* v) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  }
};
template <typename H>
struct FourHalfLike {
  static __device__ __forceinline__ void load(const H* p, float* v) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    const H* h = reinterpret_cast<const H*>(&r);
#pragma unroll
    for (int i = 0; i < 4; ++i) v[i] = to_float(h[i]);
  }
  static __device__ __forceinline__ void store(H* p, const float* v) {
    uint2 r;
    H* h = reinterpret_cast<H*>(&r);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = from_float<H>(v[i]);
    *reinterpret_cast<uint2*>(p) = r;
  }
};
template <>
struct Four<__half> : FourHalfLike<__half> {};
template <>
struct Four<__nv_bfloat16> : FourHalfLike<__nv_bfloat16> {};

template <typename Tin, typename Tout>
__global__ void ln_forward_kernel(LayerNormParams p) {
  const auto [lane, first, step] = warp_rows();
  const float inv_c = 1.0f / float(p.C);
  for (int64_t row = first; row < p.rows; row += step) {
    const Tin* x = static_cast<const Tin*>(p.x) + row * p.C;
    Tout* y = static_cast<Tout*>(p.y) + row * p.C;
    float v[4], s = 0.0f;
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      Four<Tin>::load(x + c, v);
      s += (v[0] + v[1]) + (v[2] + v[3]);
    }
    const float mean = warp_sum(s) * inv_c;
    float q = 0.0f;
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      Four<Tin>::load(x + c, v);
#pragma unroll
      for (int i = 0; i < 4; ++i) q += (v[i] - mean) * (v[i] - mean);
    }
    const float rstd = rsqrtf(warp_sum(q) * inv_c + p.eps);
    for (int64_t c = 4 * lane; c < p.C; c += 128) {
      float g[4], b[4], out[4];
      Four<Tin>::load(x + c, v);
      Four<float>::load(p.gamma + c, g);
      Four<float>::load(p.beta + c, b);
#pragma unroll
      for (int i = 0; i < 4; ++i) out[i] = (v[i] - mean) * rstd * g[i] + b[i];
      Four<Tout>::store(y + c, out);
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
      Four<Tin>::load(x + c, v);
      Four<Tout>::load(dy + c, d);
      Four<float>::load(p.gamma + c, g);
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
      Four<Tin>::load(x + c, v);
      Four<Tout>::load(dy + c, d);
      Four<float>::load(p.gamma + c, g);
#pragma unroll
      for (int i = 0; i < 4; ++i) out[i] = rstd * (d[i] * g[i] - a - (v[i] - mean) * rstd * b);
      Four<Tin>::store(dx + c, out);
    }
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
      Four<Tin>::load(static_cast<const Tin*>(p.x) + row * p.C + c, v);
      Four<Tout>::load(static_cast<const Tout*>(p.dy) + row * p.C + c, d);
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
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute");
  return sms;
}

int row_blocks(int64_t rows) {
  return static_cast<int>(std::min<int64_t>((rows + kWarps - 1) / kWarps, int64_t(sm_count()) * 8));
}

template <typename Tin, typename Tout>
void forward_with(const LayerNormParams& p, cudaStream_t s) {
  ln_forward_kernel<Tin, Tout><<<row_blocks(p.rows), 32 * kWarps, 0, s>>>(p);
  check(cudaGetLastError(), "forward launch");
}

template <typename Tin, typename Tout>
void backward_with(const LayerNormParams& p, cudaStream_t s) {
  ln_backward_dx_kernel<Tin, Tout><<<row_blocks(p.rows), 32 * kWarps, 0, s>>>(p);
  check(cudaGetLastError(), "input-gradient launch");
  const dim3 grid(static_cast<unsigned>((p.C + 127) / 128), static_cast<unsigned>(p.row_chunks));
  ln_backward_params_kernel<Tin, Tout><<<grid, 32 * kWarps, 0, s>>>(p);
  check(cudaGetLastError(), "parameter-gradient launch");
}

// Calls F<Tin, Tout> for the dtype codes (0 float32, 1 float16, 2 bfloat16).
template <template <typename, typename> class F>
void dispatch(const LayerNormParams& p, int in_dtype, int out_dtype, cudaStream_t s) {
  auto with_out = [&](auto in_tag) {
    using Tin = decltype(in_tag);
    switch (out_dtype) {
      case 0:
        return F<Tin, float>::run(p, s);
      case 1:
        return F<Tin, __half>::run(p, s);
      case 2:
        return F<Tin, __nv_bfloat16>::run(p, s);
      default:
        throw std::runtime_error("LayerNorm kernel: unsupported output dtype code " +
                                 std::to_string(out_dtype));
    }
  };
  switch (in_dtype) {
    case 0:
      return with_out(float());
    case 1:
      return with_out(__half());
    case 2:
      return with_out(__nv_bfloat16());
    default:
      throw std::runtime_error("LayerNorm kernel: unsupported input dtype code " +
                               std::to_string(in_dtype));
  }
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
  // About four blocks per SM over all column slabs, at least 64 rows per chunk.
  const int64_t slabs = (C + 127) / 128;
  const int64_t want = std::max<int64_t>(1, int64_t(sm_count()) * 4 / slabs);
  return std::max<int64_t>(1, std::min(want, (rows + 63) / 64));
}

void layer_norm_forward_launch(const LayerNormParams& p, int in_dtype, int out_dtype,
                               void* stream) {
  if (p.rows == 0) return;
  dispatch<Forward>(p, in_dtype, out_dtype, static_cast<cudaStream_t>(stream));
}

void layer_norm_backward_launch(const LayerNormParams& p, int in_dtype, int out_dtype,
                                void* stream) {
  if (p.rows == 0) return;
  dispatch<Backward>(p, in_dtype, out_dtype, static_cast<cudaStream_t>(stream));
}

}  // namespace longnet
