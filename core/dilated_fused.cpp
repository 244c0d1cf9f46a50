// The fused engine (see dilated_engine.h): the dense problems spread over CUDA streams, one
// merge kernel, and the chunked forward that holds long sequences within the device's memory.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "longnet/core/attention_streams.h"
#include "longnet/core/device_memory.h"
#include "longnet/core/dilated_engine.h"
#include "longnet/core/dilated_merge.h"

namespace longnet {
namespace {

// The dense problems of a plan over q, k, v: appends their outputs, lse and dropout states.
void run_problems(const std::vector<DilatedProblem>& plan, const at::Tensor& q, const at::Tensor& k,
                  const at::Tensor& v, const DilatedAttentionOptions& o,
                  std::vector<at::Tensor>* outs, std::vector<at::Tensor>* lses,
                  std::vector<at::Tensor>* rng) {
  const DenseAttentionArgs a = dense_args_of(o, q.size(3));
  const size_t first = outs->size();
  outs->resize(first + plan.size());
  lses->resize(first + plan.size());
  if (rng) rng->resize(first + plan.size());
  streams_run(static_cast<int64_t>(plan.size()), o.engine.streams, q, [&](int64_t i) {
    auto c = plan_call(plan[i], q, k, v);
    auto r = dense_attention_forward(c.q, c.k, c.v, a);
    if (c.copies > 1) r.lse.add_(std::log(double(c.copies)));  // counted `copies` times
    (*outs)[first + i] = r.out;
    (*lses)[first + i] = r.lse;
    if (rng) (*rng)[first + i] = r.rng;
    return std::vector<at::Tensor>{r.out, r.lse, r.rng};
  });
}

// The options with only the branches for which keep[i] holds.
DilatedAttentionOptions branches_where(const DilatedAttentionOptions& o,
                                       const std::vector<bool>& keep) {
  DilatedAttentionOptions sub = o;
  sub.segment_lengths.clear();
  sub.dilation_rates.clear();
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) {
      sub.segment_lengths.push_back(o.segment_lengths[i]);
      sub.dilation_rates.push_back(o.dilation_rates[i]);
    }
  return sub;
}

// The fused forward into out (B, N, H, D) and lse (B, N, H) float32, both contiguous. With
// chunk_elements > 0 and q larger than that (and no dropout, whose states follow the whole
// plan), it runs in pieces so that the problems' outputs held at once stay near chunk_elements
// elements instead of one q per branch: batch slices, and within one long sequence, chunks of C
// tokens. A chunk is a multiple of the segment lengths of the branches it covers (the short
// ones), so their problems over the chunk are those of the whole sequence; the other branches
// (long segments, whose outputs are small when their rates are large) run once over the whole
// sequence, and every chunk's merge reads the rows of theirs that fall into it. lse_parts, if
// given, gets the problems' lse holding the merged lse when the forward runs in one piece (its
// problems are then the whole plan's); it stays empty otherwise.
void fused_forward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const DilatedAttentionOptions& o, int64_t chunk_elements,
                        const at::Tensor& out, const at::Tensor& lse, std::vector<at::Tensor>* rng,
                        std::vector<at::Tensor>* lse_parts) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), row = H * q.size(3);
  const bool whole = chunk_elements <= 0 || q.numel() <= chunk_elements || o.dropout > 0;
  if (!whole && B > 1) {
    const int64_t step = std::max<int64_t>(1, chunk_elements / (N * row));
    for (int64_t b0 = 0; b0 < B; b0 += step) {
      const int64_t nb = std::min(step, B - b0);
      fused_forward_into(q.narrow(0, b0, nb), k.narrow(0, b0, nb), v.narrow(0, b0, nb), o,
                         chunk_elements, out.narrow(0, b0, nb), lse.narrow(0, b0, nb), rng,
                         nullptr);
    }
    return;
  }
  // The chunked branches: the shortest segments whose lcm stays within the chunk.
  const int64_t C0 = std::max<int64_t>(1, chunk_elements / row);
  const size_t nb = o.segment_lengths.size();
  std::vector<size_t> by_w(nb);
  for (size_t i = 0; i < nb; ++i) by_w[i] = i;
  auto wc = [&](size_t i) { return std::min(o.segment_lengths[i], N); };
  std::sort(by_w.begin(), by_w.end(), [&](size_t a, size_t b) { return wc(a) < wc(b); });
  std::vector<bool> chunked(nb, false);
  int64_t l = 1;
  for (size_t i : by_w) {
    const int64_t l2 = std::lcm(l, wc(i));
    if (whole || wc(i) == N || l2 > C0) continue;
    l = l2;
    chunked[i] = true;
  }
  if (std::find(chunked.begin(), chunked.end(), true) == chunked.end()) {
    const auto plan = dilated_plan(B, N, H, o);
    std::vector<at::Tensor> outs, lses;
    run_problems(plan, q, k, v, o, &outs, &lses, rng);
    dilated_merge_forward(plan, B, N, H, outs, lses, out, lse, {}, lse_parts != nullptr);
    if (lse_parts) *lse_parts = std::move(lses);
    return;
  }
  const int64_t C = C0 / l * l;
  std::vector<bool> unchunked(nb);
  for (size_t i = 0; i < nb; ++i) unchunked[i] = !chunked[i];
  const auto chunk_o = branches_where(o, chunked), rest_o = branches_where(o, unchunked);
  std::vector<DilatedProblem> rest_plan;
  std::vector<at::Tensor> rest_outs, rest_lses;
  if (!rest_o.segment_lengths.empty()) {
    rest_plan = dilated_plan(1, N, H, rest_o);
    run_problems(rest_plan, q, k, v, o, &rest_outs, &rest_lses, nullptr);
  }
  const int n_rest = dilated_branch_count(rest_plan);
  for (int64_t t0 = 0; t0 < N; t0 += C) {
    const int64_t n = std::min(C, N - t0);
    auto plan = dilated_plan(1, n, H, chunk_o);
    const int n_chunked = dilated_branch_count(plan);  // (a short last chunk may have fewer)
    std::vector<at::Tensor> outs, lses;
    run_problems(plan, q.narrow(1, t0, n), k.narrow(1, t0, n), v.narrow(1, t0, n), o, &outs, &lses,
                 nullptr);
    std::vector<MergeSpan> spans(n_chunked, MergeSpan{n, 0});
    spans.resize(n_chunked + n_rest, MergeSpan{N, t0});
    for (auto p : rest_plan) {
      p.branch += n_chunked;
      plan.push_back(p);
    }
    outs.insert(outs.end(), rest_outs.begin(), rest_outs.end());
    lses.insert(lses.end(), rest_lses.begin(), rest_lses.end());
    dilated_merge_forward(plan, 1, n, H, outs, lses, out.narrow(1, t0, n), lse.narrow(1, t0, n),
                          spans);
  }
}

}  // namespace

// The GPU forward runs in chunks of about kChunkElements (512 MiB of bfloat16) when the problems'
// outputs of a one-piece forward (about one q-sized tensor per branch) would fill more than a
// quarter of the device's memory: this is what lets one GPU hold 2^28 tokens of 4 x 8 heads,
// while sizes that fit run in one piece (chunks serialise problems and merges, which costs time).
// engine.chunk_above sets the threshold instead (for comparisons).
int64_t dilated_chunk_elements(const at::Tensor& q, const DilatedAttentionOptions& o) {
  constexpr int64_t kChunkElements = int64_t(1) << 28;
  if (o.engine.chunk_above >= 0) return q.numel() > o.engine.chunk_above ? kChunkElements : 0;
  if (!q.is_cuda()) return 0;
  const double outputs =
      double(q.numel()) * double(q.element_size()) * double(o.segment_lengths.size());
  return outputs > double(device_memory_bytes(q.device())) / 4 ? kChunkElements : 0;
}

DilatedForward dilated_fused_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const DilatedAttentionOptions& o, int64_t chunk_elements) {
  DilatedForward f;
  f.out = at::empty_like(q);
  f.lse = at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(at::kFloat));
  fused_forward_into(q, k, v, o, chunk_elements, f.out, f.lse, &f.rng, &f.lse_parts);
  if (o.dropout == 0) f.rng.clear();
  return f;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_fused_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::vector<at::Tensor>& rng,
    const DilatedAttentionOptions& o, const std::vector<at::Tensor>& lse_parts, bool packed) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
  const auto plan = dilated_plan(B, N, H, o);
  const auto args = dense_args_of(o, q.size(3));
  std::vector<std::array<at::Tensor, 3>> grads(plan.size());
  streams_run(static_cast<int64_t>(plan.size()), o.engine.streams, q, [&](int64_t i) {
    const auto& p = plan[i];
    AttentionCall c = plan_call(p, q, k, v);
    auto lse_c = lse_parts.empty() ? dilated_view(lse, p).permute({0, 2, 1}).contiguous()
                                   : lse_parts[i];  // (B', H', n)
    auto [dq, dk, dv] =
        dense_attention_backward(dilated_view(dout, p), c.q, c.k, c.v, dilated_view(out, p), lse_c,
                                 rng.empty() ? at::Tensor() : rng[i], args);
    if (p.copies > 1)  // one copy's share, `copies` times
      for (auto* g : {&dq, &dk, &dv}) g->mul_(double(p.copies));
    grads[i] = {dq, dk, dv};
    return std::vector<at::Tensor>{dq, dk, dv, lse_c};
  });
  std::array<at::Tensor, 3> d;
  if (packed) {
    auto qkv = at::empty({B, N, 3, H, q.size(3)}, q.options());
    for (int t = 0; t < 3; ++t) d[t] = qkv.select(2, t);
  } else {
    d = {at::empty_like(q), at::empty_like(q), at::empty_like(q)};
  }
  dilated_merge_backward(plan, B, N, H, grads, d);
  return {d[0], d[1], d[2]};
}

}  // namespace longnet
