// The fused GPU merge of dilated attention's dense problems. Instead of accumulating every
// problem's output into a float32 buffer (one read-modify-write pass per problem), one kernel
// visits each output row (b, p, head j) once, finds the problem of every branch that covers it,
// and combines them: out = sum_c exp(lse_c - lse) out_c with lse = logsumexp_c lse_c (forward),
// or dq = sum_c dq_c and likewise dk, dv (backward). The index maths below is shared by the
// kernel and by a host emulation that the CPU tests check against the plain merge.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define LONGNET_HD __host__ __device__ __forceinline__
#else
#define LONGNET_HD inline
#endif

namespace longnet {

constexpr int kMergeMaxBranches = 8;

// One dense problem's tensors as the merge reads them: up to three sources (out, or dq/dk/dv),
// each (B', n, H', D) with element strides (stride(-1) == 1), and its lse (B', H', n).
struct MergeCall {
  const void* src[3];
  int64_t sb[3], sn[3], sh[3];
  float* lse;  // forward: read, and overwritten with the merged lse when write_back_lse is set
  int64_t lse_sb, lse_sh, lse_sn;
  int64_t b_begin, seg_count, m_begin;  // batch index = (b - b_begin) * seg_count + m - m_begin
};

struct MergeBranch {
  int64_t w, r, full_segments;  // segment length (clipped to its sequence), rate, full segments
  int64_t pos_offset;           // token pos of the merged rows is pos + pos_offset in this branch
  int64_t table_offset;         // into MergeParams::table: [s < min(r, H)][part 0|1][b]
};

struct MergeParams {
  void* dst[3];  // (B, N, H, D) outputs: out, or dq, dk, dv; heads and head dim contiguous
  int64_t dst_token_stride;  // elements from one token (b, pos) of dst to the next (H * D dense)
  float* lse;                // (B, N, H) contiguous (forward only)
  int64_t B, N, H, D;
  int num_sources;     // 1 (forward) or 3 (backward)
  int write_back_lse;  // forward: 1 = also write the merged lse into every problem's own lse
  int num_branches;
  MergeBranch branches[kMergeMaxBranches];
  const MergeCall* calls;
  const int32_t* table;  // problem index per (branch, class, part, b), or -1
};

// Where branch i's problem holds token (b, pos): the offset class s0 it selects there (every
// head j with j mod r == s0 reads this row), the problem's index (-1 when no head does), and the
// element offsets of the row (head 0 of the problem) in its sources and lse. Computed once per
// token and branch; the kernel then serves every head of the token from it.
struct MergeTokenHit {
  int32_t s0;
  int32_t call;
  int64_t base[3];
  int64_t lse_base;
};

LONGNET_HD MergeTokenHit merge_token_locate(const MergeParams& p, int i, int64_t b, int64_t pos) {
  MergeTokenHit hit;
  const MergeBranch& br = p.branches[i];
  const int64_t gpos = pos + br.pos_offset, m = gpos / br.w, local = gpos - m * br.w;
  const int64_t s0 = local % br.r, a = local / br.r;
  hit.s0 = static_cast<int32_t>(s0 < p.H ? s0 : -1);
  hit.call = -1;
  if (s0 >= p.H) return hit;  // rates above H: offsets with no head
  const int64_t part = m < br.full_segments ? 0 : 1;
  const int32_t c = p.table[br.table_offset + (s0 * 2 + part) * p.B + b];
  if (c < 0) return hit;
  const MergeCall& call = p.calls[c];
  const int64_t bi = (b - call.b_begin) * call.seg_count + (m - call.m_begin);
  for (int t = 0; t < 3; ++t) hit.base[t] = bi * call.sb[t] + a * call.sn[t];
  hit.lse_base = bi * call.lse_sb + a * call.lse_sn;
  hit.call = c;
  return hit;
}

// Head j of a token: covered by branch i's hit iff j mod r == s0; then it is head j / r of the
// problem.
LONGNET_HD bool merge_head_covered(const MergeParams& p, int i, int64_t j, const MergeTokenHit& hit,
                                   int64_t* h) {
  const int64_t r = p.branches[i].r;
  if (hit.call < 0 || j % r != hit.s0) return false;
  *h = j / r;
  return true;
}

#ifdef LONGNET_WITH_CUDA
// dtype: 0 float32, 1 float16, 2 bfloat16. stream: a cudaStream_t.
void dilated_merge_forward_launch(const MergeParams& p, int dtype, void* stream);
void dilated_merge_backward_launch(const MergeParams& p, int dtype, void* stream);
#endif

}  // namespace longnet

// ---- host side (dilated_merge.cpp) -----------------------------------------------------------
#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

namespace longnet {

struct DilatedProblem;

// Where a branch's problems sit relative to the merged rows: they were planned over a sequence
// of seq_len tokens, and merged row pos is that sequence's token pos + pos_offset. By default
// (no spans) every branch was planned over the merged rows themselves ({N, 0}).
struct MergeSpan {
  int64_t seq_len = 0, pos_offset = 0;
};

// out (B, N, H, D) and lse (B, N, H) float32 from every problem's output (B', n, H', D) and
// lse (B', H', n) float32. CUDA tensors use the kernel; CPU float32 tensors a host emulation of
// it (for tests). spans: empty, or one per branch of the plan. With write_back_lse, every
// problem's lse (then float32 tensors, written in place) ends up holding the merged lse of its
// rows: what its backward reads, without a copy out of the (B, N, H) one.
void dilated_merge_forward(const std::vector<DilatedProblem>& plan, int64_t B, int64_t N, int64_t H,
                           const std::vector<at::Tensor>& outs, const std::vector<at::Tensor>& lses,
                           const at::Tensor& out, const at::Tensor& lse,
                           const std::vector<MergeSpan>& spans = {}, bool write_back_lse = false);
// dq, dk, dv (B, N, H, D) = sums of every problem's gradients (B', n, H', D). The three share
// one layout with dense heads: contiguous, or the slices of one (B, N, 3, H, D) tensor.
void dilated_merge_backward(const std::vector<DilatedProblem>& plan, int64_t B, int64_t N,
                            int64_t H, const std::vector<std::array<at::Tensor, 3>>& grads,
                            const std::array<at::Tensor, 3>& dst);

}  // namespace longnet
