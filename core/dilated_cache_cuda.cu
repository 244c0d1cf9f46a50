// The decode kernels of the dilated KV cache (see dilated_cache_kernel.h). Memory-bound: each
// cached row a query attends to is read once, by a group of D/8 lanes holding 8 elements each
// (one 16-byte word for 16-bit types), with an online softmax in float32 (log2 domain) per group;
// groups, warps and then chunks merge by log-sum-exp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "longnet/core/cuda_convert.cuh"
#include "longnet/core/cuda_dispatch.cuh"
#include "longnet/core/cuda_launch.cuh"
#include "longnet/core/dilated_cache_kernel.h"

namespace longnet {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 4;  // rows per lane group in flight at once
// The one-pass kernel's last block: partials per warp in flight (at most 16 floats a lane).
template <int D>
constexpr int kMergeAhead = D >= 128 ? 16 / (D / 32) : 8;
// 16-bit types: resident attend blocks per SM the registers must allow (at most 80 registers a
// thread): the kernel is memory-bound, and more blocks keep more loads in flight.
template <typename T>
constexpr int kAttendBlocksPerSM = sizeof(T) == 2 ? 6 : 1;
constexpr float kLog2e = 1.4426950408889634f;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("dilated decode kernel: ") + what + ": " +
                             cudaGetErrorString(e));
}

// Where row pos of sequence b falls in branch i: slot a, and whether head h selects it.
struct Slot {
  int a;
  bool selected;
};
// Chunks of R rows covering slots 0..a (32-bit: R <= 256).
__device__ __forceinline__ int chunks_to(const DilatedDecodeParams& p, int a) {
  const int R = int(p.chunk_rows);
  return (a + R) / R;
}
// One 64-bit remainder, then 32-bit maths (segment lengths and heads are below 2^31, which the
// cache checks): every block works this out, some for every branch.
__device__ __forceinline__ Slot slot_of(const DilatedDecodeParams& p, int i, int64_t pos,
                                        int64_t h) {
  const int o = int(pos % p.w[i]), r = int(p.r[i]);
  return {o / r, int(h) % r == o % r};
}

// 8 consecutive elements of one row, as loaded (16-bit: one 16-byte word; float: two), and as
// float. Loading all of a tile's rows before using any keeps several loads in flight per thread.
template <typename T>
struct Row8 {
  uint4 w[sizeof(T) == 4 ? 2 : 1];
  __device__ __forceinline__ void load(const T* src) {
#pragma unroll
    for (int j = 0; j < int(sizeof(w) / sizeof(uint4)); ++j)
      w[j] = reinterpret_cast<const uint4*>(src)[j];
  }
  __device__ __forceinline__ float get(int j) const {
    return to_float(reinterpret_cast<const T*>(w)[j]);
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads) decode_store_kernel(const DilatedDecodeParams p) {
  const int64_t bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  const int64_t pos = p.positions[b];
  const T* ks = static_cast<const T*>(p.k_new) + b * p.k_stride_b + h * p.k_stride_h;
  const T* vs = static_cast<const T*>(p.v_new) + b * p.v_stride_b + h * p.v_stride_h;
  for (int i = 0; i < p.nb; ++i) {
    const Slot s = slot_of(p, i, pos, h);
    if (!s.selected) continue;
    const int64_t row = (bh * p.S + p.off[i] + s.a) * p.D;
    T* kd = static_cast<T*>(p.k_cache) + row;
    T* vd = static_cast<T*>(p.v_cache) + row;
    for (int64_t d = threadIdx.x; d < p.D; d += kThreads) {
      kd[d] = ks[d];
      vd[d] = vs[d];
    }
  }
}

// Lists of partials to merge: total, and index(k), where the k-th lies among the (b, h)'s nb
// max_chunks partials.
//
// Every chunk of every branch that selects the row at pos (ceil((a_i + 1) / R) of branch i, or
// 0), flattened branch by branch: the three-pass combine.
struct PartialList {
  int chunks[kDecodeMaxBranches] = {};
  int total = 0;
  __device__ PartialList(const DilatedDecodeParams& p, int64_t pos, int64_t h) {
#pragma unroll
    for (int i = 0; i < kDecodeMaxBranches; ++i) {
      if (i < p.nb) {
        const Slot s = slot_of(p, i, pos, h);
        if (s.selected) chunks[i] = chunks_to(p, s.a);
      }
      total += chunks[i];
    }
  }
  __device__ int64_t index(const DilatedDecodeParams& p, int k) const {
    int i = 0;
#pragma unroll
    for (int j = 0; j < kDecodeMaxBranches - 1; ++j)
      if (i == j && k >= chunks[j]) k -= chunks[j], i = j + 1;
    return i * p.max_chunks + k;
  }
};
// The first n chunks of branch i.
struct BranchChunks {
  int i, total;
  __device__ int64_t index(const DilatedDecodeParams& p, int k) const {
    return i * p.max_chunks + k;
  }
};
// Chunk 0 of every branch in a bit mask: the one-pass kernel's branch results.
struct BranchFirsts {
  unsigned mask;
  int total;
  __device__ int64_t index(const DilatedDecodeParams& p, int k) const {
    int i = 0;
#pragma unroll
    for (int j = 0; j < kDecodeMaxBranches; ++j)
      if ((mask >> j) & 1u && k-- == 0) i = j;
    return i * p.max_chunks;
  }
};

// The branches that select the row of (b, h) at pos, as a bit mask, by one whole warp: lane i
// works out branch i.
__device__ __forceinline__ unsigned selecting_branches_warp(const DilatedDecodeParams& p,
                                                            int64_t pos, int64_t h) {
  const int lane = threadIdx.x % 32;
  return __ballot_sync(0xffffffffu, lane < p.nb && slot_of(p, lane, pos, h).selected);
}

// Where a merge puts its result: out[d] = acc[d] / L in T (the attention output), or a partial
// (acc[D], M, L) in float32 that a later merge takes up.
template <typename T>
struct ToOutput {
  T* out;
  __device__ void operator()(int d, float a, float, float L) const {
    out[d] = from_float<T>(L > 0.f ? a / L : 0.f);
  }
};
struct ToPartial {
  float* out;
  int D;
  __device__ void operator()(int d, float a, float M, float L) const {
    out[d] = a;
    if (d == 0) out[D] = M, out[D + 1] = L;
  }
};

// Merges the `list.total` partials of one (b, h) at part into out[d] = sum_k acc_k[d]
// 2^(m_k - M) / sum_k l_k 2^(m_k - M), M the largest m_k, with the block's Warps warps: warp w
// takes partials w, w + Warps, ... with an online softmax, Ahead of them loaded before any is
// used (the loop is latency-bound), lane j holding dimensions j, j + 32, ...; the warps then
// merge through shared memory (sm_m, sm_l: Warps floats; sm_acc: Warps x D), and store(d, acc,
// M, L) writes the result. Reads past L1: in the one-pass kernel other blocks wrote the
// partials. A partial's maximum is finite (every chunk launched holds a row) unless its scores
// were NaN; a warp left at -inf weighs nothing.
template <typename T, int D, int Warps, int Ahead, typename List, typename Store>
__device__ __forceinline__ void merge_partials(const DilatedDecodeParams& p, const List& list,
                                               const float* part, float* sm_m, float* sm_l,
                                               float* sm_acc, const Store& store) {
  constexpr int PL = (D + 31) / 32;  // dimensions per lane
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float m = -INFINITY, l = 0.f, acc[PL];
#pragma unroll
  for (int j = 0; j < PL; ++j) acc[j] = 0.f;
  for (int k0 = warp; k0 < list.total; k0 += Warps * Ahead) {
    float qm[Ahead], ql[Ahead], qv[Ahead][PL];
#pragma unroll
    for (int u = 0; u < Ahead; ++u) {
      const int k = k0 + u * Warps;
      qm[u] = -INFINITY;
      if (k < list.total) {
        const float* q = part + list.index(p, k) * (D + 2);
        qm[u] = __ldcg(q + D);
        ql[u] = __ldcg(q + D + 1);
#pragma unroll
        for (int j = 0; j < PL; ++j) qv[u][j] = lane + 32 * j < D ? __ldcg(q + lane + 32 * j) : 0.f;
      }
    }
#pragma unroll
    for (int u = 0; u < Ahead; ++u) {
      if (qm[u] == -INFINITY) continue;  // past the list, or a chunk whose scores were all NaN
      const float m_new = fmaxf(m, qm[u]);
      const float corr = exp2f(m - m_new), w = exp2f(qm[u] - m_new);
      l = l * corr + ql[u] * w;
#pragma unroll
      for (int j = 0; j < PL; ++j) acc[j] = acc[j] * corr + qv[u][j] * w;
      m = m_new;
    }
  }
  if (lane == 0) sm_m[warp] = m, sm_l[warp] = l;
#pragma unroll
  for (int j = 0; j < PL; ++j)
    if (lane + 32 * j < D) sm_acc[warp * D + lane + 32 * j] = acc[j];
  __syncthreads();
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < Warps; ++w) M = fmaxf(M, sm_m[w]);
  float L = 0.f;
#pragma unroll
  for (int w = 0; w < Warps; ++w)
    if (sm_m[w] != -INFINITY) L += sm_l[w] * exp2f(sm_m[w] - M);
  for (int d = threadIdx.x; d < D; d += 32 * Warps) {
    float a = 0.f;
#pragma unroll
    for (int w = 0; w < Warps; ++w)
      if (sm_m[w] != -INFINITY) a += sm_acc[w * D + d] * exp2f(sm_m[w] - M);
    store(d, a, M, L);
  }
}

// Counts the block in *count, which `expected` blocks reach in all; true in the last to arrive
// (which sets the count back to 0: atomicInc wraps), and then the writes every block made before
// arriving are visible to it (reads past L1). The block's own writes are made visible before the
// count: a barrier, then one thread's fence (cumulative), as in a grid-wide barrier.
__device__ __forceinline__ bool arrive_last(unsigned* count, int expected, bool* sm_last) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const unsigned last = unsigned(expected) - 1;
    *sm_last = atomicInc(count, last) == last;
    if (*sm_last) __threadfence();
  }
  __syncthreads();
  return *sm_last;
}

template <typename T, int D, bool OnePass>
__global__ void __launch_bounds__(kThreads, kAttendBlocksPerSM<T>)
    decode_attend_kernel(const DilatedDecodeParams p) {
  constexpr int G = D / 8;    // lanes per row
  constexpr int RW = 32 / G;  // rows per warp and iteration
  constexpr int kGroups = kWarps * RW;
  __shared__ float sm_m[kGroups], sm_l[kGroups], sm_acc[kGroups][D];
  __shared__ bool sm_last;
  __shared__ unsigned sm_mask;

  const int64_t bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  const int i = blockIdx.y;
  // Positions are fixed before the step's first kernel, and only this layer's own step writes
  // its cache: both may be read before pdl_wait (cuda_launch.cuh).
  const int64_t pos = p.positions[b];
  const Slot s = slot_of(p, i, pos, h);
  const int64_t row0 = int64_t(blockIdx.z) * p.chunk_rows;
  if (!s.selected || row0 > s.a) {  // (uniform over the block)
    // A row no branch selects has no partials: block (b h, 0, 0) writes its zeros.
    if (OnePass && i == 0 && blockIdx.z == 0 && PartialList(p, pos, h).total == 0) {
      pdl_wait();
      for (int d = threadIdx.x; d < D; d += kThreads)
        static_cast<T*>(p.out)[bh * D + d] = from_float<T>(0.f);
    }
    return;
  }
  if (OnePass) pdl_trigger();
  const int64_t row1 = min(row0 + p.chunk_rows, int64_t(s.a) + 1);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / G, li = lane % G;
  const int64_t base = (bh * p.S + p.off[i]) * D + li * 8;
  const T* kb = static_cast<const T*>(p.k_cache) + base;
  const T* vb = static_cast<const T*>(p.v_cache) + base;
  const T* ks = static_cast<const T*>(p.k_new) + b * p.k_stride_b + h * p.k_stride_h + li * 8;
  const T* vs = static_cast<const T*>(p.v_new) + b * p.v_stride_b + h * p.v_stride_h + li * 8;

  // Tiles of kTile rows per group: rows r0 + u RW + g. The loop bound is uniform over the warp
  // (every lane takes part in the shuffles). The first tile loads before the wait.
  Row8<T> kr[kTile], vr[kTile];
  bool ok[kTile];
  auto load_tile = [&](int64_t r0) {
#pragma unroll
    for (int u = 0; u < kTile; ++u) {
      const int64_t row = r0 + u * RW + g;
      ok[u] = row < row1;
      if (ok[u]) {
        kr[u].load(kb + row * D);
        vr[u].load(vb + row * D);
      }
    }
  };
  constexpr int64_t kStride = kWarps * kTile * RW;
  int64_t r0 = row0 + warp * kTile * RW;
  load_tile(r0);
  // The branch results the last arrival merges, while the loads are in flight (warp 0).
  unsigned branches = 0;
  if (OnePass && warp == 0) branches = selecting_branches_warp(p, pos, h);
  if (OnePass) {
    pdl_wait();
    // The block whose chunk holds the new row stores it (its own tiles take it from k_new).
    if (int(blockIdx.z) == chunks_to(p, s.a) - 1) {
      const int64_t row = (bh * p.S + p.off[i] + s.a) * D;
      const T* k1 = static_cast<const T*>(p.k_new) + b * p.k_stride_b + h * p.k_stride_h;
      const T* v1 = static_cast<const T*>(p.v_new) + b * p.v_stride_b + h * p.v_stride_h;
      for (int d = threadIdx.x; d < D; d += kThreads) {
        static_cast<T*>(p.k_cache)[row + d] = k1[d];
        static_cast<T*>(p.v_cache)[row + d] = v1[d];
      }
    }
  }
  float q[8];
  {
    const T* qs = static_cast<const T*>(p.q) + b * p.q_stride_b + h * p.q_stride_h + li * 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) q[j] = to_float(qs[j]) * p.scale * kLog2e;
  }

  float m = -INFINITY, l = 0.f, acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (bool first = true; r0 < row1; r0 += kStride, first = false) {
    // The tile (the first one is loaded), its new row from k_new, v_new (one pass: the row's
    // slot may still hold the previous segment's).
    if (!first) load_tile(r0);
#pragma unroll
    for (int u = 0; u < kTile; ++u) {
      if (OnePass && ok[u] && r0 + u * RW + g == s.a) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          reinterpret_cast<T*>(kr[u].w)[j] = ks[j];
          reinterpret_cast<T*>(vr[u].w)[j] = vs[j];
        }
      }
    }
    float dot[kTile];
    float tile_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kTile; ++u) {
      float d = 0.f;
      if (ok[u]) {
#pragma unroll
        for (int j = 0; j < 8; ++j) d += q[j] * kr[u].get(j);
      }
#pragma unroll
      for (int off = G / 2; off >= 1; off /= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
      dot[u] = d;
      if (ok[u]) tile_max = fmaxf(tile_max, d);
    }
    if (tile_max == -INFINITY) continue;  // no row of this tile for this group
    const float m_new = fmaxf(m, tile_max);
    const float corr = exp2f(m - m_new);
    l *= corr;
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j] *= corr;
#pragma unroll
    for (int u = 0; u < kTile; ++u) {
      if (!ok[u]) continue;
      const float e = exp2f(dot[u] - m_new);
      l += e;
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[j] += e * vr[u].get(j);
    }
    m = m_new;
  }
  const int grp = warp * RW + g;
  if (li == 0) sm_m[grp] = m, sm_l[grp] = l;
#pragma unroll
  for (int j = 0; j < 8; ++j) sm_acc[grp][li * 8 + j] = acc[j];
  __syncthreads();

  float M = -INFINITY;
  for (int k = 0; k < kGroups; ++k) M = fmaxf(M, sm_m[k]);
  float* part = p.partial + bh * p.nb * p.max_chunks * (D + 2);
  float* out = part + (i * p.max_chunks + blockIdx.z) * (D + 2);
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float a = 0.f;
    for (int k = 0; k < kGroups; ++k)
      if (sm_m[k] != -INFINITY) a += sm_acc[k][d] * exp2f(sm_m[k] - M);
    out[d] = a;
  }
  if (threadIdx.x == 0) {
    float L = 0.f;
    for (int k = 0; k < kGroups; ++k)
      if (sm_m[k] != -INFINITY) L += sm_l[k] * exp2f(sm_m[k] - M);
    out[D] = M;
    out[D + 1] = L;
  }
  if (!OnePass) return;

  // Two levels of merges: the last block of branch i to arrive merges the branch's chunks into
  // its chunk 0 (a branch of one chunk has its result there already), then the last branch of
  // (b, h) merges the branch results into out. The branches merge in parallel, and the merge
  // the layer waits for reads at most one partial per branch.
  const int chunks = chunks_to(p, s.a);
  float* branch = part + i * p.max_chunks * (D + 2);
  if (chunks > 1) {
    if (!arrive_last(p.arrivals + p.B * p.H + bh * p.nb + i, chunks, &sm_last)) return;
    merge_partials<T, D, kWarps, kMergeAhead<D>>(p, BranchChunks{i, chunks}, part, sm_m, sm_l,
                                                 &sm_acc[0][0], ToPartial{branch, D});
  }
  if (!arrive_last(p.arrivals + bh, __popc(branches), &sm_last)) return;
  if (threadIdx.x == 0) sm_mask = branches;  // (warp 0 worked it out)
  __syncthreads();
  merge_partials<T, D, kWarps, kMergeAhead<D>>(p, BranchFirsts{sm_mask, __popc(sm_mask)}, part,
                                               sm_m, sm_l, &sm_acc[0][0],
                                               ToOutput<T>{static_cast<T*>(p.out) + bh * D});
}

// The three-pass path's merge: one block of kCombineWarps warps per (b, h).
constexpr int kCombineWarps = 16;
constexpr int kCombineAhead = 4;
template <typename T, int D>
__global__ void __launch_bounds__(32 * kCombineWarps)
    decode_combine_kernel(const DilatedDecodeParams p) {
  __shared__ float sm_m[kCombineWarps], sm_l[kCombineWarps], sm_acc[kCombineWarps * D];
  const int64_t bh = blockIdx.x, b = bh / p.H, h = bh % p.H;
  merge_partials<T, D, kCombineWarps, kCombineAhead>(
      p, PartialList(p, p.positions[b], h), p.partial + bh * p.nb * p.max_chunks * (D + 2), sm_m,
      sm_l, sm_acc, ToOutput<T>{static_cast<T*>(p.out) + bh * D});
}

template <typename T, int D>
void launch_with(const DilatedDecodeParams& p, cudaStream_t stream) {
  const unsigned bh = static_cast<unsigned>(p.B * p.H);
  const dim3 grid(bh, static_cast<unsigned>(p.nb), static_cast<unsigned>(p.max_chunks));
  if (p.one_pass) {
    check(launch_maybe_early(decode_attend_kernel<T, D, true>, grid, dim3(kThreads), 0, stream,
                             p.early_launch, p),
          "one-pass launch");
    return;
  }
  decode_store_kernel<T><<<bh, kThreads, 0, stream>>>(p);
  check(cudaGetLastError(), "store launch");
  decode_attend_kernel<T, D, false><<<grid, kThreads, 0, stream>>>(p);
  check(cudaGetLastError(), "attend launch");
  decode_combine_kernel<T, D><<<bh, 32 * kCombineWarps, 0, stream>>>(p);
  check(cudaGetLastError(), "combine launch");
}

template <typename T>
void launch(const DilatedDecodeParams& p, cudaStream_t stream) {
  if (p.B * p.H == 0) return;
  if (p.chunk_rows % 64 != 0 || p.max_chunks < 1 || p.max_chunks > 65535 || p.nb < 1 ||
      p.nb > kDecodeMaxBranches)
    throw std::runtime_error("dilated decode kernel: bad launch geometry (chunk_rows " +
                             std::to_string(p.chunk_rows) + ", max_chunks " +
                             std::to_string(p.max_chunks) + ", branches " + std::to_string(p.nb) +
                             ")");
  if (p.one_pass && p.arrivals == nullptr)
    throw std::runtime_error("dilated decode kernel: the one-pass kernel needs its arrival counts");
  switch (p.D) {
    case 16:
      return launch_with<T, 16>(p, stream);
    case 32:
      return launch_with<T, 32>(p, stream);
    case 64:
      return launch_with<T, 64>(p, stream);
    case 128:
      return launch_with<T, 128>(p, stream);
    case 256:
      return launch_with<T, 256>(p, stream);
    default:
      throw std::runtime_error("dilated decode kernel: head_dim " + std::to_string(p.D) +
                               " is not one of 16, 32, 64, 128, 256");
  }
}

}  // namespace

void dilated_decode_launch(const DilatedDecodeParams& p, int dtype, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  kernel_dtype_dispatch(dtype, "dilated decode kernel", [&](auto t) { launch<decltype(t)>(p, s); });
}

}  // namespace longnet
