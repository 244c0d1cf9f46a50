// The plan of one dilated attention (docs/design.md section 2): which dense problems exist, one
// per (branch, offset class, full segments | last segment), and the strided views of q, k, v
// (and of outputs and gradients) each problem reads and writes, with no copy:
//
//   q (B, N, H, D) -> view (B*M, n, H_s, D)     M full segments, n = ceil((w - s) / r) rows,
//                                               H_s = ceil((H - s) / r) heads: s, s+r, ...
//
// Also the FLOP count that benchmarks and MFU use.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

// One dense problem of a dilated branch. Branches that are identical after clipping to N (the
// same w and r: short sequences make them) are planned once, with `copies` the number of branches
// it stands for: its softmax weight counts that many times (log(copies) added to its lse) and so
// do its gradients. (Not with dropout, where every branch draws its own mask.)
struct DilatedProblem {
  int branch = 0;  // index among the distinct branches
  int64_t copies = 1;
  int64_t w = 0, r = 1, s = 0;  // segment length (clipped to N), rate, offset class
  int64_t b_begin = 0, b_count = 1;
  int64_t seg_begin = 0, seg_count = 1;  // first token of the first segment; segments
  int64_t n = 0;                         // rows per segment in this class
  int64_t heads = 0;                     // H_s: heads s, s + r, ...
};

// The problems of a (B, N, H, *) attention with these segment lengths and rates.
std::vector<DilatedProblem> dilated_plan(int64_t B, int64_t N, int64_t H,
                                         const DilatedAttentionOptions& o);
// The bytes of one branch's scores, the most over the branches, that the CPU's plain maths
// holds at once for `tokens` query rows of an attention of `heads` heads over sequences of n
// tokens: per head (w / r)^2 in each of the n / w segments, w / r^2 per token (w at most n), in
// the compute dtype (float64 for float64, else float32). 0 on the GPU, whose engine runs the
// dense kernels or, in float32, the plain maths in chunks it sizes to the device's memory.
double dilated_plain_score_bytes(int64_t tokens, int64_t n, int64_t heads,
                                 const std::vector<int64_t>& segment_lengths,
                                 const std::vector<int64_t>& dilation_rates, c10::ScalarType dtype,
                                 const c10::Device& device);
// The number of distinct branches a plan covers (1 + its largest branch index).
int dilated_branch_count(const std::vector<DilatedProblem>& plan);

// The view of x (B, N, H, *rest) that problem p reads or writes: (B'', n, H_s, *rest).
at::Tensor dilated_view(const at::Tensor& x, const DilatedProblem& p);

// A strided view of x (B, N, H, *rest): batch entries [b_begin, b_begin + b_count), rows
// row_begin + a * row_stride (a < rows), heads head_begin + h * head_stride (h < heads).
// Returns (b_count, rows, heads, *rest).
at::Tensor strided_rows_view(const at::Tensor& x, int64_t b_begin, int64_t b_count,
                             int64_t row_begin, int64_t rows, int64_t row_stride,
                             int64_t head_begin, int64_t heads, int64_t head_stride);

// FLOPs of one dilated-attention forward (docs/design.md section 6): the sum over branches of
// 4 B H D (N / w_i) (w_i / r_i)^2 (w_i clipped to N), halved when causal. Backward = 2.5 x.
double dilated_forward_flops(int64_t B, int64_t N, int64_t H, int64_t D,
                             const std::vector<int64_t>& w, const std::vector<int64_t>& r,
                             bool causal);

// The softmax scale in effect: o.softmax_scale or 1 / sqrt(head_dim).
double dilated_scale(const DilatedAttentionOptions& o, int64_t head_dim);

}  // namespace longnet
