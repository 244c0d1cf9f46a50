// Host side of the fused merge (see dilated_merge.h): builds the kernel's tables from the plan
// and the problems' tensors, launches the kernel on CUDA tensors, or runs a host emulation of
// it, through the same index functions, on CPU float32 tensors.
#include "longnet/core/dilated_merge.h"

#include <ATen/ATen.h>

#include <cstring>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "longnet/core/dilated_plan.h"
#include "longnet/core/kernel_dtype.h"

namespace longnet {
namespace {

// MergeParams plus the storage its pointers refer to.
struct MergeTables {
  MergeParams p{};
  at::Tensor calls, table;
};

MergeTables build_tables(const std::vector<DilatedProblem>& plan, int64_t B, int64_t N, int64_t H,
                         int64_t D, const std::vector<std::array<at::Tensor, 3>>& srcs,
                         const std::vector<at::Tensor>& lses, int num_sources,
                         const at::Device& device, const std::vector<MergeSpan>& spans) {
  MergeTables t;
  MergeParams& p = t.p;
  p.B = B;
  p.N = N;
  p.H = H;
  p.D = D;
  p.num_sources = num_sources;
  // Branches in plan order; table offsets per branch.
  std::vector<int> branch_of_plan;
  int nb = 0;
  for (const auto& pr : plan) nb = std::max(nb, pr.branch + 1);
  TORCH_CHECK(nb <= kMergeMaxBranches, "dilated attention (GPU): at most ", kMergeMaxBranches,
              " branches are supported, got ", nb);
  p.num_branches = nb;
  TORCH_INTERNAL_ASSERT(spans.empty() || int(spans.size()) == nb, "dilated merge: ", spans.size(),
                        " spans for ", nb, " branches");
  auto span_of = [&](int branch) { return spans.empty() ? MergeSpan{N, 0} : spans[branch]; };
  std::vector<bool> seen(nb, false);
  int64_t table_size = 0;
  for (const auto& pr : plan) {
    if (seen[pr.branch]) continue;
    seen[pr.branch] = true;
    MergeBranch& br = p.branches[pr.branch];
    br.w = pr.w;
    br.r = pr.r;
    br.full_segments = span_of(pr.branch).seq_len / pr.w;
    br.pos_offset = span_of(pr.branch).pos_offset;
    br.table_offset = table_size;
    table_size += std::min(pr.r, H) * 2 * B;
  }
  // Branches with no problem at all (cannot happen for valid options) would read garbage.
  for (int i = 0; i < nb; ++i) TORCH_INTERNAL_ASSERT(seen[i], "branch without problems");
  std::vector<int32_t> table(std::max<int64_t>(table_size, 1), -1);
  std::vector<MergeCall> calls(plan.size());
  for (size_t c = 0; c < plan.size(); ++c) {
    const auto& pr = plan[c];
    MergeCall& mc = calls[c];
    for (int s = 0; s < 3; ++s) {
      const at::Tensor& x = srcs[c][std::min(s, num_sources - 1)];
      mc.src[s] = x.data_ptr();
      mc.sb[s] = x.stride(0);
      mc.sn[s] = x.stride(1);
      mc.sh[s] = x.stride(2);
      TORCH_INTERNAL_ASSERT(x.stride(3) == 1, "dilated merge: source without contiguous last dim");
    }
    if (!lses.empty()) {
      const at::Tensor& l = lses[c];  // (B', H', n)
      mc.lse = l.data_ptr<float>();
      mc.lse_sb = l.stride(0);
      mc.lse_sh = l.stride(1);
      mc.lse_sn = l.stride(2);
    } else {
      mc.lse = nullptr;
      mc.lse_sb = mc.lse_sh = mc.lse_sn = 0;
    }
    mc.b_begin = pr.b_begin;
    mc.seg_count = pr.seg_count;
    mc.m_begin = pr.seg_begin / pr.w;
    const MergeBranch& br = p.branches[pr.branch];
    const int64_t part = pr.seg_begin == 0 && pr.seg_count == br.full_segments ? 0 : 1;
    for (int64_t b = pr.b_begin; b < pr.b_begin + pr.b_count; ++b)
      table[br.table_offset + (pr.s * 2 + part) * B + b] = static_cast<int32_t>(c);
  }
  auto calls_cpu = at::empty({int64_t(calls.size() * sizeof(MergeCall))}, at::kByte);
  std::memcpy(calls_cpu.data_ptr(), calls.data(), calls.size() * sizeof(MergeCall));
  auto table_cpu = at::from_blob(table.data(), {int64_t(table.size())}, at::kInt).clone();
  // Pinned and non-blocking: a pageable copy would stall the host until the GPU reaches it, once
  // per attention call (PyTorch's pinned allocator keeps the buffer until the copy is done).
  const bool to_gpu = device.is_cuda();
  t.calls =
      to_gpu ? calls_cpu.pin_memory().to(at::TensorOptions().device(device), /*non_blocking=*/true)
             : calls_cpu;
  t.table =
      to_gpu ? table_cpu.pin_memory().to(at::TensorOptions().device(device), /*non_blocking=*/true)
             : table_cpu;
  p.calls = reinterpret_cast<const MergeCall*>(t.calls.data_ptr());
  p.table = t.table.data_ptr<int32_t>();
  return t;
}

// The kernel's loops on the host, float32 only: the reference for the index maths.
void merge_emulate(const MergeParams& p, bool forward) {
  for (int64_t b = 0; b < p.B; ++b) {
    for (int64_t pos = 0; pos < p.N; ++pos) {
      std::vector<MergeTokenHit> hits(p.num_branches);
      for (int i = 0; i < p.num_branches; ++i) hits[i] = merge_token_locate(p, i, b, pos);
      for (int64_t j = 0; j < p.H; ++j) {
        const int64_t row = (b * p.N + pos) * p.H + j;
        const int64_t at = (b * p.N + pos) * p.dst_token_stride + j * p.D;  // into dst
        std::vector<float> lse_c;
        std::vector<float*> lse_at;
        std::vector<std::array<const float*, 3>> src;
        for (int i = 0; i < p.num_branches; ++i) {
          int64_t h = 0;
          if (!merge_head_covered(p, i, j, hits[i], &h)) continue;
          const MergeCall& c = p.calls[hits[i].call];
          std::array<const float*, 3> s{};
          for (int t = 0; t < 3; ++t)
            s[t] = static_cast<const float*>(c.src[t]) + hits[i].base[t] + h * c.sh[t];
          src.push_back(s);
          if (forward) {
            lse_at.push_back(c.lse + hits[i].lse_base + h * c.lse_sh);
            lse_c.push_back(*lse_at.back());
          }
        }
        if (forward) {
          float m = -INFINITY, sum = 0;
          for (float l : lse_c) m = std::max(m, l);
          for (float l : lse_c) sum += std::exp(l - m);
          const float lse = src.empty() ? -INFINITY : m + std::log(sum);
          float* out = static_cast<float*>(p.dst[0]) + at;
          for (int64_t e = 0; e < p.D; ++e) {  // (weights normalised, as the kernel's)
            float acc = 0;
            for (size_t k = 0; k < src.size(); ++k) acc += std::exp(lse_c[k] - m) * src[k][0][e];
            out[e] = src.empty() ? 0.f : acc / sum;
          }
          p.lse[row] = lse;
          if (p.write_back_lse)
            for (float* l : lse_at) *l = lse;
        } else {
          for (int t = 0; t < 3; ++t) {
            float* out = static_cast<float*>(p.dst[t]) + at;
            for (int64_t e = 0; e < p.D; ++e) {
              float acc = 0;
              for (const auto& s : src) acc += s[t][e];
              out[e] = acc;
            }
          }
        }
      }
    }
  }
}

}  // namespace

void dilated_merge_forward(const std::vector<DilatedProblem>& plan, int64_t B, int64_t N, int64_t H,
                           const std::vector<at::Tensor>& outs, const std::vector<at::Tensor>& lses,
                           const at::Tensor& out, const at::Tensor& lse,
                           const std::vector<MergeSpan>& spans, bool write_back_lse) {
  TORCH_CHECK(out.is_contiguous() && lse.is_contiguous() && lse.scalar_type() == at::kFloat,
              "dilated merge: out and float32 lse must be contiguous");
  std::vector<std::array<at::Tensor, 3>> srcs;
  std::vector<at::Tensor> lse32;
  for (size_t i = 0; i < outs.size(); ++i) {
    srcs.push_back({outs[i], outs[i], outs[i]});
    TORCH_CHECK(!write_back_lse || lses[i].scalar_type() == at::kFloat,
                "dilated merge: the lse written back must be float32, got ", lses[i].scalar_type());
    lse32.push_back(lses[i].to(at::kFloat));
  }
  auto t = build_tables(plan, B, N, H, out.size(3), srcs, lse32, 1, out.device(), spans);
  t.p.dst[0] = t.p.dst[1] = t.p.dst[2] = out.data_ptr();
  t.p.dst_token_stride = H * out.size(3);
  t.p.write_back_lse = write_back_lse ? 1 : 0;
  t.p.lse = lse.data_ptr<float>();
#ifdef LONGNET_WITH_CUDA
  if (out.is_cuda()) {
    dilated_merge_forward_launch(t.p, kernel_dtype_code(out.scalar_type(), "dilated merge"),
                                 at::cuda::getCurrentCUDAStream().stream());
    return;
  }
#endif
  TORCH_CHECK(out.scalar_type() == at::kFloat, "dilated merge emulation: float32 only");
  merge_emulate(t.p, true);
}

void dilated_merge_backward(const std::vector<DilatedProblem>& plan, int64_t B, int64_t N,
                            int64_t H, const std::vector<std::array<at::Tensor, 3>>& grads,
                            const std::array<at::Tensor, 3>& dst) {
  const int64_t D = dst[0].size(3), T = dst[0].stride(1);
  for (const auto& d : dst)
    TORCH_CHECK(d.sizes() == dst[0].sizes() && d.stride(3) == 1 && d.stride(2) == D &&
                    d.stride(1) == T && T >= H * D && d.stride(0) == N * T,
                "dilated merge: outputs must be (B, N, H, D) with dense heads and one token "
                "stride (contiguous, or slices of one (B, N, 3, H, D) tensor); got strides ",
                d.strides());
  auto t = build_tables(plan, B, N, H, D, grads, {}, 3, dst[0].device(), {});
  for (int i = 0; i < 3; ++i) t.p.dst[i] = dst[i].data_ptr();
  t.p.dst_token_stride = T;
  t.p.write_back_lse = 0;
  t.p.lse = nullptr;
#ifdef LONGNET_WITH_CUDA
  if (dst[0].is_cuda()) {
    dilated_merge_backward_launch(t.p, kernel_dtype_code(dst[0].scalar_type(), "dilated merge"),
                                  at::cuda::getCurrentCUDAStream().stream());
    return;
  }
#endif
  TORCH_CHECK(dst[0].scalar_type() == at::kFloat, "dilated merge emulation: float32 only");
  merge_emulate(t.p, false);
}

}  // namespace longnet
