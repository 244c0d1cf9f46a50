// The plan of dense problems and their strided views (see dilated_plan.h).
#include "longnet/core/dilated_plan.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "longnet/core/int_math.h"

namespace longnet {

double dilated_forward_flops(int64_t B, int64_t N, int64_t H, int64_t D,
                             const std::vector<int64_t>& w, const std::vector<int64_t>& r,
                             bool causal) {
  double total = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double wi = double(std::min(w[i], N)), rows = wi / double(r[i]);
    total += 4.0 * B * H * D * (double(N) / wi) * rows * rows;
  }
  return causal ? total / 2 : total;
}

double dilated_scale(const DilatedAttentionOptions& o, int64_t head_dim) {
  return o.softmax_scale ? *o.softmax_scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

std::vector<DilatedProblem> dilated_plan(int64_t B, int64_t N, int64_t H,
                                         const DilatedAttentionOptions& o) {
  // The distinct (w clipped to N, r) pairs, in order of first appearance, and their counts.
  std::vector<std::pair<int64_t, int64_t>> branches;
  std::vector<int64_t> copies;
  for (size_t i = 0; i < o.segment_lengths.size(); ++i) {
    const std::pair<int64_t, int64_t> wr{std::min(o.segment_lengths[i], N), o.dilation_rates[i]};
    auto it = std::find(branches.begin(), branches.end(), wr);
    if (it != branches.end() && o.dropout == 0) {
      ++copies[it - branches.begin()];
      continue;
    }
    branches.push_back(wr);
    copies.push_back(1);
  }
  std::vector<DilatedProblem> plan;
  for (size_t i = 0; i < branches.size(); ++i) {
    const auto [w, r] = branches[i];
    const int64_t M = N / w, tail = N - M * w;
    for (int64_t s = 0; s < std::min(r, H); ++s) {
      DilatedProblem p;
      p.branch = static_cast<int>(i);
      p.copies = copies[i];
      p.w = w;
      p.r = r;
      p.s = s;
      p.heads = ceil_div(H - s, r);
      if (s < w) {  // the full segments
        p.n = ceil_div(w - s, r);
        p.seg_begin = 0;
        p.seg_count = M;
        // One problem over all (batch, segment) pairs when they form one strided dimension.
        if (B == 1 || M == 1 || tail == 0) {
          p.b_begin = 0;
          p.b_count = B;
          plan.push_back(p);
        } else {
          for (int64_t b = 0; b < B; ++b) {
            p.b_begin = b;
            p.b_count = 1;
            plan.push_back(p);
          }
        }
      }
      if (tail > s) {  // the shorter last segment
        p.n = ceil_div(tail - s, r);
        p.seg_begin = M * w;
        p.seg_count = 1;
        p.b_begin = 0;
        p.b_count = B;
        plan.push_back(p);
      }
    }
  }
  return plan;
}

int dilated_branch_count(const std::vector<DilatedProblem>& plan) {
  int n = 0;
  for (const auto& p : plan) n = std::max(n, p.branch + 1);
  return n;
}

double dilated_plain_score_bytes(int64_t tokens, int64_t n, int64_t heads,
                                 const std::vector<int64_t>& segment_lengths,
                                 const std::vector<int64_t>& dilation_rates, c10::ScalarType dtype,
                                 const c10::Device& device) {
  if (device.is_cuda()) return 0;
  double most = 0;
  for (size_t i = 0; i < segment_lengths.size() && i < dilation_rates.size(); ++i) {
    const double w = double(std::min(segment_lengths[i], n)), r = double(dilation_rates[i]);
    most = std::max(most, std::ceil(w / r) / r);
  }
  return (dtype == at::kDouble ? 8.0 : 4.0) * double(tokens) * double(heads) * most;
}

at::Tensor dilated_view(const at::Tensor& x, const DilatedProblem& p) {
  const int64_t sB = x.stride(0), sN = x.stride(1), sH = x.stride(2);
  if (p.b_count > 1 && p.seg_count > 1)
    TORCH_INTERNAL_ASSERT(sB == p.seg_count * p.w * sN,
                          "dilated_view: batch and segments do not "
                          "form one strided dimension");
  std::vector<int64_t> sizes{p.b_count * p.seg_count, p.n, p.heads};
  // A rate above the rows or heads there are (up to 2^40) strides nothing: only a dimension of
  // more than one element takes the product, which then lies inside the tensor (no overflow).
  std::vector<int64_t> strides{p.seg_count > 1 ? p.w * sN : sB, p.n > 1 ? p.r * sN : sN,
                               p.heads > 1 ? p.r * sH : sH};
  for (int64_t d = 3; d < x.dim(); ++d) {
    sizes.push_back(x.size(d));
    strides.push_back(x.stride(d));
  }
  int64_t offset = x.storage_offset() + p.b_begin * sB + (p.seg_begin + p.s) * sN + p.s * sH;
  return x.as_strided(sizes, strides, offset);
}

at::Tensor strided_rows_view(const at::Tensor& x, int64_t b_begin, int64_t b_count,
                             int64_t row_begin, int64_t rows, int64_t row_stride,
                             int64_t head_begin, int64_t heads, int64_t head_stride) {
  const int64_t sB = x.stride(0), sN = x.stride(1), sH = x.stride(2);
  std::vector<int64_t> sizes{b_count, rows, heads};
  std::vector<int64_t> strides{sB, rows > 1 ? row_stride * sN : sN,
                               heads > 1 ? head_stride * sH : sH};
  for (int64_t d = 3; d < x.dim(); ++d) {
    sizes.push_back(x.size(d));
    strides.push_back(x.stride(d));
  }
  return x.as_strided(sizes, strides,
                      x.storage_offset() + b_begin * sB + row_begin * sN + head_begin * sH);
}

}  // namespace longnet
