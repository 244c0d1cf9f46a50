// CUDA kernels of the fused dilated-attention merge (see dilated_merge.h): one pass over the
// output, 16-byte loads and stores, float accumulation. Memory-bound: every problem's output is
// read once and the result written once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "longnet/core/cuda_dispatch.cuh"
#include "longnet/core/dilated_merge.h"

namespace longnet {
namespace {

template <typename T>
struct Vec {
  static constexpr int kN = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void load_vec(const T* ptr, float* out) {
  uint4 raw = *reinterpret_cast<const uint4*>(ptr);
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < Vec<T>::kN; ++i) out[i] = static_cast<float>(v[i]);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* ptr, const float* in) {
  uint4 raw;
  T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < Vec<T>::kN; ++i) v[i] = static_cast<T>(in[i]);
  *reinterpret_cast<uint4*>(ptr) = raw;
}

template <>
__device__ __forceinline__ void load_vec<__nv_bfloat16>(const __nv_bfloat16* ptr, float* out) {
  uint4 raw = *reinterpret_cast<const uint4*>(ptr);
  const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = __bfloat162float(v[i]);
}

template <>
__device__ __forceinline__ void store_vec<__nv_bfloat16>(__nv_bfloat16* ptr, const float* in) {
  uint4 raw;
  __nv_bfloat16* v = reinterpret_cast<__nv_bfloat16*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = __float2bfloat16(in[i]);
  *reinterpret_cast<uint4*>(ptr) = raw;
}

template <>
__device__ __forceinline__ void load_vec<__half>(const __half* ptr, float* out) {
  uint4 raw = *reinterpret_cast<const uint4*>(ptr);
  const __half* v = reinterpret_cast<const __half*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = __half2float(v[i]);
}

template <>
__device__ __forceinline__ void store_vec<__half>(__half* ptr, const float* in) {
  uint4 raw;
  __half* v = reinterpret_cast<__half*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = __float2half(in[i]);
  *reinterpret_cast<uint4*>(ptr) = raw;
}

// Launch shape: each token gets H * D / V threads, one per (head j, 16-byte chunk). Per block,
// the head -> (j mod r, j / r) tables of every branch; per token and branch,
// merge_token_locate() once, shared by all its heads. Hits are located for a whole tile of
// tokens between two barriers, so the lookups' latency is paid once per tile, not per token.
struct Shape {
  int tokens;             // tokens served at once: blockDim / threads_per_token
  int tile;               // tokens whose hits are located per barrier (a multiple of tokens)
  int threads_per_token;  // H * D / V
};

struct SharedLayout {
  MergeTokenHit* hits;  // [token][branch]
  float* weights;       // forward: [token][head][branch], exp(lse_c - lse), 0 where not covered
  int32_t* jmod;        // [branch][H]
  int32_t* jdiv;        // [branch][H]
};

// The forward keeps each tile's merge weights in shared memory: they are worked out once per
// (token, head) by all the block's threads together, whose lse loads are then all in flight at
// once, instead of by every thread of the head before its own loads.
__host__ __device__ inline size_t weight_count(const MergeParams& p, int tokens, int mode) {
  return mode == 0 ? size_t(tokens) * size_t(p.H) * size_t(p.num_branches) : 0;
}

__device__ SharedLayout shared_layout(char* smem, const MergeParams& p, int tokens, int mode) {
  SharedLayout l;
  l.hits = reinterpret_cast<MergeTokenHit*>(smem);
  l.weights = reinterpret_cast<float*>(l.hits + tokens * p.num_branches);
  l.jmod = reinterpret_cast<int32_t*>(l.weights + weight_count(p, tokens, mode));
  l.jdiv = l.jmod + p.num_branches * p.H;
  return l;
}

size_t shared_bytes(const MergeParams& p, int tokens, int mode) {
  return sizeof(MergeTokenHit) * tokens * p.num_branches +
         sizeof(float) * weight_count(p, tokens, mode) + 2 * sizeof(int32_t) * p.num_branches * p.H;
}

// MODE 0: forward merge (weights exp(lse_c - lse), normalised); MODE 1: backward sum of dq, dk, dv.
constexpr int kMaxThreads = 512;

template <typename T, int MODE>
// (kMaxThreads, 2): at most 64 registers, so that two blocks (about 1000 threads) stay resident
// per SM and enough loads are in flight to run at memory bandwidth.
__global__ void __launch_bounds__(kMaxThreads, 2)
    merge_kernel(const MergeParams p, const Shape shape) {
  constexpr int V = Vec<T>::kN;
  extern __shared__ __align__(16) char smem[];
  SharedLayout sh = shared_layout(smem, p, shape.tile, MODE);
  const int nb = p.num_branches;
  for (int idx = threadIdx.x; idx < nb * p.H; idx += blockDim.x) {
    const int64_t r = p.branches[idx / p.H].r, j = idx % p.H;
    sh.jmod[idx] = static_cast<int32_t>(j % r);
    sh.jdiv[idx] = static_cast<int32_t>(j / r);
  }
  const int64_t chunks = p.D / V, tokens_total = p.B * p.N;
  const int t_local = threadIdx.x / shape.threads_per_token;
  const int rem = threadIdx.x % shape.threads_per_token;
  const int64_t j = rem / chunks, chunk = rem % chunks;
  for (int64_t first = int64_t(blockIdx.x) * shape.tile; first < tokens_total;
       first += int64_t(gridDim.x) * shape.tile) {
    __syncthreads();  // the previous tile's hits are no longer read
    for (int idx = threadIdx.x; idx < shape.tile * nb; idx += blockDim.x) {
      const int64_t token = first + idx / nb;
      if (token < tokens_total)
        sh.hits[idx] = merge_token_locate(p, idx % nb, token / p.N, token % p.N);
    }
    __syncthreads();
    if (MODE == 0) {
      // Per (token, head) of the tile: the covering problems' lse, the merged lse (written out)
      // and each problem's weight exp(lse_c - lse); 0 for problems that do not cover the head.
      for (int idx = threadIdx.x; idx < shape.tile * p.H; idx += blockDim.x) {
        const int t = idx / static_cast<int>(p.H), jj = idx - t * static_cast<int>(p.H);
        const int64_t token = first + t;
        if (token >= tokens_total) continue;
        const MergeTokenHit* hits = sh.hits + t * nb;
        float lse_c[kMergeMaxBranches];
        float m = -INFINITY;
        // The lse of branch i's problem for this (token, head), or nullptr where none covers it.
        auto lse_of = [&](int i) -> float* {
          const MergeTokenHit& hit = hits[i];
          if (hit.call < 0 || sh.jmod[i * p.H + jj] != hit.s0) return nullptr;
          const MergeCall& c = p.calls[hit.call];
          return c.lse + hit.lse_base + int64_t(sh.jdiv[i * p.H + jj]) * c.lse_sh;
        };
#pragma unroll
        for (int i = 0; i < kMergeMaxBranches; ++i) {
          lse_c[i] = -INFINITY;
          if (i < nb) {
            if (const float* l = lse_of(i)) {
              lse_c[i] = *l;
              m = fmaxf(m, lse_c[i]);
            }
          }
        }
        float lse = -INFINITY, sum = 0.f;
        if (m > -INFINITY) {
#pragma unroll
          for (int i = 0; i < kMergeMaxBranches; ++i)
            if (lse_c[i] > -INFINITY) sum += __expf(lse_c[i] - m);
          lse = m + __logf(sum);
        }
        // exp(lse_c - m) / sum: exp(lse_c - lse) normalised, so that the weights sum to 1
        // also where lse's rounding (large logits) would not.
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        float* w = sh.weights + (int64_t(t) * p.H + jj) * nb;
#pragma unroll
        for (int i = 0; i < kMergeMaxBranches; ++i)
          if (i < nb) w[i] = lse_c[i] > -INFINITY ? __expf(lse_c[i] - m) * inv : 0.f;
        p.lse[token * p.H + jj] = lse;
        if (p.write_back_lse)
          for (int i = 0; i < nb; ++i)
            if (float* l = lse_of(i)) *l = lse;
      }
      __syncthreads();
    }
    for (int t = t_local; t < shape.tile; t += shape.tokens) {
      const int64_t token = first + t;
      if (token >= tokens_total) break;
      const int64_t row = token * p.dst_token_stride + j * p.D;  // into dst
      const MergeTokenHit* hits = sh.hits + t * nb;
      if (MODE == 0) {
        const float* w = sh.weights + (int64_t(t) * p.H + j) * nb;
        float acc[V];
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] = 0.f;
#pragma unroll
        for (int i = 0; i < kMergeMaxBranches; ++i) {
          if (i >= nb) break;
          const float wgt = w[i];
          if (wgt == 0.f) continue;  // not covered (or a weight that underflowed: adds nothing)
          const MergeTokenHit& hit = hits[i];
          const MergeCall& c = p.calls[hit.call];
          const T* src = static_cast<const T*>(c.src[0]) + hit.base[0] +
                         int64_t(sh.jdiv[i * p.H + j]) * c.sh[0] + chunk * V;
          float x[V];
          load_vec<T>(src, x);
#pragma unroll
          for (int e = 0; e < V; ++e) acc[e] += wgt * x[e];
        }
        store_vec<T>(static_cast<T*>(p.dst[0]) + row + chunk * V, acc);
      } else {
        float acc[3][V];
#pragma unroll
        for (int t = 0; t < 3; ++t)
#pragma unroll
          for (int e = 0; e < V; ++e) acc[t][e] = 0.f;
#pragma unroll 1
        for (int i = 0; i < nb; ++i) {
          const MergeTokenHit& hit = hits[i];
          if (hit.call < 0 || sh.jmod[i * p.H + j] != hit.s0) continue;
          const int64_t h = sh.jdiv[i * p.H + j];
          const MergeCall& c = p.calls[hit.call];
#pragma unroll
          for (int t = 0; t < 3; ++t) {
            float x[V];
            load_vec<T>(static_cast<const T*>(c.src[t]) + hit.base[t] + h * c.sh[t] + chunk * V, x);
#pragma unroll
            for (int e = 0; e < V; ++e) acc[t][e] += x[e];
          }
        }
#pragma unroll
        for (int t = 0; t < 3; ++t)
          store_vec<T>(static_cast<T*>(p.dst[t]) + row + chunk * V, acc[t]);
      }
    }
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA call ") + what +
                             " failed: " + cudaGetErrorString(e));
}

template <typename T, int MODE>
void launch(const MergeParams& p, void* stream) {
  constexpr int V = Vec<T>::kN;
  if (p.num_branches < 1 || p.num_branches > kMergeMaxBranches || p.D % V != 0)
    throw std::runtime_error("dilated merge: unsupported shape (branches " +
                             std::to_string(p.num_branches) + ", head dim " + std::to_string(p.D) +
                             ")");
  Shape shape;
  shape.threads_per_token = static_cast<int>(p.H * (p.D / V));
  if (shape.threads_per_token > kMaxThreads)
    throw std::runtime_error("dilated merge: heads x head_dim / " + std::to_string(V) + " = " +
                             std::to_string(shape.threads_per_token) + " threads per token, over " +
                             std::to_string(kMaxThreads));
  shape.tokens = std::max(1, kMaxThreads / shape.threads_per_token);
  shape.tile = shape.tokens * std::max(1, 64 / shape.tokens);
  // The forward's weights stay within about 40 KiB of shared memory per block.
  while (MODE == 0 && shape.tile > shape.tokens &&
         shared_bytes(p, shape.tile, MODE) > size_t(40) * 1024)
    shape.tile -= shape.tokens;
  const int threads = shape.tokens * shape.threads_per_token;
  const size_t smem = shared_bytes(p, shape.tile, MODE);
  auto kernel = merge_kernel<T, MODE>;
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "cudaFuncSetAttribute");
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute");
  // Enough blocks to fill every SM (a few resident each); each walks many tiles.
  const int64_t tiles = (p.B * p.N + shape.tile - 1) / shape.tile;
  const int64_t per_sm = std::max(1, 2048 / threads);
  const int blocks = static_cast<int>(std::min<int64_t>(tiles, int64_t(sms) * per_sm));
  kernel<<<blocks, threads, smem, static_cast<cudaStream_t>(stream)>>>(p, shape);
  check(cudaGetLastError(), "dilated merge kernel launch");
}

}  // namespace

void dilated_merge_forward_launch(const MergeParams& p, int dtype, void* stream) {
  kernel_dtype_dispatch(dtype, "dilated merge", [&](auto t) { launch<decltype(t), 0>(p, stream); });
}

void dilated_merge_backward_launch(const MergeParams& p, int dtype, void* stream) {
  kernel_dtype_dispatch(dtype, "dilated merge", [&](auto t) { launch<decltype(t), 1>(p, stream); });
}

}  // namespace longnet
