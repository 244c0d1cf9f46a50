// Dilated attention: options checks, the plan of dense problems, the strided views, the
// log-sum-exp merge, the autograd function and the module (see dilated_attention.h).
#include "core/dilated_attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>

#include "core/dilated_merge.h"

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace longnet {

namespace {
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Every (B, N, H, D) tensor the views are taken of is contiguous, so that for one geometry the
// views of q, k, v, out and dout have identical strides. cuDNN's graph cache is keyed by the q,
// k, v strides only and bakes in the first out / dout layout it sees for a key.
at::Tensor rowmajor(const at::Tensor& x) {
  return x.contiguous();
}

// v alone may stay a strided view on the GPU (typically of one fused q/k/v projection), with
// dense heads, rows and batches 16-byte aligned: only the q, k, v layouts enter cuDNN's graph
// cache key, and out and dout keep following q's row-major layout, so no key sees two output
// layouts. (Spares one copy of v per layer in each pass.)
at::Tensor value_rows(const at::Tensor& v) {
  const int64_t align = 16 / v.element_size();
  const bool ok = v.is_cuda() && v.dim() == 4 && v.stride(3) == 1 && v.stride(2) == v.size(3) &&
                  v.stride(1) >= v.size(2) * v.size(3) && v.stride(0) >= v.size(1) * v.stride(1) &&
                  v.stride(1) % align == 0 && v.stride(0) % align == 0 &&
                  reinterpret_cast<uintptr_t>(v.data_ptr()) % 16 == 0;
  return ok ? v : v.contiguous();
}
}  // namespace

void dilated_options_check(const DilatedAttentionOptions& o) {
  const auto& w = o.segment_lengths;
  const auto& r = o.dilation_rates;
  TORCH_CHECK(!w.empty(),
              "dilated attention: segment_lengths is empty; give at least one "
              "segment length, e.g. [2048, 4096]");
  TORCH_CHECK(w.size() == r.size(), "dilated attention: segment_lengths ", list_str(w),
              " and "
              "dilation_rates ",
              list_str(r),
              " must have the same length (one rate per segment "
              "length), got ",
              w.size(), " and ", r.size());
  for (size_t i = 0; i < w.size(); ++i) {
    TORCH_CHECK(w[i] >= 1, "dilated attention: segment_lengths[", i, "] = ", w[i], " must be >= 1");
    TORCH_CHECK(r[i] >= 1, "dilated attention: dilation_rates[", i, "] = ", r[i], " must be >= 1");
  }
  if (o.softmax_scale)
    TORCH_CHECK(std::isfinite(*o.softmax_scale),
                "dilated attention: softmax_scale must be "
                "finite, got ",
                *o.softmax_scale);
  TORCH_CHECK(o.dropout >= 0.0 && o.dropout < 1.0,
              "dilated attention: dropout must be in "
              "[0, 1), got ",
              o.dropout);
}

void dilated_inputs_check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const DilatedAttentionOptions& o) {
  dilated_options_check(o);
  TORCH_CHECK(q.dim() == 4,
              "dilated attention: query must be (batch, seq_len, heads, head_dim), "
              "got ",
              q.dim(), " dims with shape ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(),
              "dilated attention: query, key "
              "and value must have the same shape, got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "dilated attention: query, key and value must have the same dtype, got ",
              q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(),
              "dilated attention: query, "
              "key and value must be on the same device, got ",
              q.device(), ", ", k.device(), ", ", v.device());
  TORCH_CHECK(at::isFloatingType(q.scalar_type()),
              "dilated attention: inputs must be floating "
              "point, got ",
              q.scalar_type());
  TORCH_CHECK(q.size(0) >= 1 && q.size(1) >= 1 && q.size(2) >= 1 && q.size(3) >= 1,
              "dilated attention: every dimension must be >= 1, got shape ", q.sizes());
  if (q.is_cuda()) {
    TORCH_CHECK(q.scalar_type() != at::kDouble,
                "dilated attention: float64 runs on the CPU "
                "only; use float32, bfloat16 or float16 on the GPU");
    TORCH_CHECK(q.size(3) % 8 == 0 && q.size(3) <= 256, "dilated attention: head_dim ", q.size(3),
                " is not supported by the GPU kernels; use a multiple of 8, at most "
                "256");
  }
}

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
  std::vector<DilatedProblem> plan;
  for (size_t i = 0; i < o.segment_lengths.size(); ++i) {
    const int64_t w = std::min(o.segment_lengths[i], N), r = o.dilation_rates[i];
    const int64_t M = N / w, tail = N - M * w;
    for (int64_t s = 0; s < std::min(r, H); ++s) {
      DilatedProblem p;
      p.branch = static_cast<int>(i);
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

at::Tensor dilated_view(const at::Tensor& x, const DilatedProblem& p) {
  const int64_t sB = x.stride(0), sN = x.stride(1), sH = x.stride(2);
  if (p.b_count > 1 && p.seg_count > 1)
    TORCH_INTERNAL_ASSERT(sB == p.seg_count * p.w * sN,
                          "dilated_view: batch and segments do not "
                          "form one strided dimension");
  std::vector<int64_t> sizes{p.b_count * p.seg_count, p.n, p.heads};
  std::vector<int64_t> strides{p.seg_count > 1 ? p.w * sN : sB, p.r * sN, p.r * sH};
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
  std::vector<int64_t> strides{sB, row_stride * sN, head_stride * sH};
  for (int64_t d = 3; d < x.dim(); ++d) {
    sizes.push_back(x.size(d));
    strides.push_back(x.stride(d));
  }
  return x.as_strided(sizes, strides,
                      x.storage_offset() + b_begin * sB + row_begin * sN + head_begin * sH);
}

void attention_calls_forward(std::vector<AttentionCall>& calls, const DenseAttentionArgs& args) {
  // Pass 1: every problem, and the merged log-sum-exp.
  std::vector<at::Tensor> outs, lses;
  for (auto& c : calls) {
    DenseAttentionArgs a = args;
    a.causal = c.causal;
    auto r = dense_attention_forward(c.q, c.k, c.v, a);
    c.rng = r.rng;
    auto lse_c = r.lse.transpose(1, 2);  // (B', n, H')
    c.lse.copy_(at::logaddexp(c.lse, lse_c));
    outs.push_back(std::move(r.out));
    lses.push_back(std::move(lse_c));
  }
  // Pass 2: out = sum_c exp(lse_c - lse) out_c.
  for (size_t i = 0; i < calls.size(); ++i)
    calls[i].out.add_(outs[i] * (lses[i] - calls[i].lse).exp_().unsqueeze(-1));
}

void attention_call_backward(AttentionCall& c, const DenseAttentionArgs& args) {
  DenseAttentionArgs a = args;
  a.causal = c.causal;
  auto lse = c.lse.permute({0, 2, 1}).contiguous();  // (B', H', n)
  auto [dq, dk, dv] = dense_attention_backward(c.dout, c.q, c.k, c.v, c.out, lse, c.rng, a);
  c.dq.add_(dq);
  c.dk.add_(dk);
  c.dv.add_(dv);
}

namespace {
DenseAttentionArgs dense_args(const DilatedAttentionOptions& o, int64_t head_dim) {
  DenseAttentionArgs a;
  a.scale = dilated_scale(o, head_dim);
  a.dropout = o.dropout;
  return a;
}

// GPU tensors merge with the fused kernel (dilated_merge.h); LONGNET_FUSED_MERGE=0 selects the
// plain ATen merge instead (for comparison; same results up to rounding).
bool use_fused_merge(const at::Tensor& q) {
  static const bool enabled = [] {
    const char* env = std::getenv("LONGNET_FUSED_MERGE");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }();
  return q.is_cuda() && enabled;
}

AttentionCall plan_call(const DilatedProblem& p, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v) {
  AttentionCall c;
  c.q = dilated_view(q, p);
  c.k = dilated_view(k, p);
  c.v = dilated_view(v, p);
  return c;
}
}  // namespace

namespace {

// CUDA streams the dense problems of one attention are spread over (LONGNET_ATTENTION_STREAMS,
// default 4; 1 runs them one after another on the current stream). The problems are
// independent, and many are small (one head, a few thousand rows), so several at once keep the
// GPU full where one alone leaves SMs idle.
int attention_streams() {
  static const int n = [] {
    const char* env = std::getenv("LONGNET_ATTENTION_STREAMS");
    const int v = env ? std::atoi(env) : 4;
    TORCH_CHECK(v >= 1 && v <= 16, "LONGNET_ATTENTION_STREAMS='", env ? env : "",
                "' must be a number of CUDA streams from 1 to 16");
    return v;
  }();
  return n;
}

// Runs fn(i) for i in [0, n). On a CUDA device with several streams allowed, problem i runs on
// side stream i mod S, every side stream ordered after the current stream and the current stream
// after all of them; the tensors fn returns (made on a side stream) are marked as used by the
// current stream, so the caching allocator does not reuse them before the merge has read them.
void run_spread(int64_t n, const at::Tensor& like,
                const std::function<std::vector<at::Tensor>(int64_t)>& fn) {
#ifdef LONGNET_WITH_CUDA
  const int S = like.is_cuda() ? static_cast<int>(std::min<int64_t>(attention_streams(), n)) : 1;
  if (S > 1) {
    const auto dev = like.device().index();
    // The same side streams for every call: the caching allocator reuses a freed block only on
    // the stream it was made on, so fresh pool streams each call would strand cached memory.
    static std::mutex mu;  // (the backward runs on autograd's device thread)
    static std::vector<std::vector<c10::cuda::CUDAStream>> streams_of(at::cuda::device_count());
    std::vector<c10::cuda::CUDAStream> side;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto& mine = streams_of.at(dev);
      while (static_cast<int>(mine.size()) < attention_streams())
        mine.push_back(c10::cuda::getStreamFromPool(false, dev));
      side = mine;
    }
    const auto main = at::cuda::getCurrentCUDAStream(dev);
    at::cuda::CUDAEvent start;
    start.record(main);
    for (int s = 0; s < S; ++s) start.block(side[s]);
    // Joins the side streams back into the main one even when fn throws, so that inputs made on
    // the main stream are not reused while a side stream still reads them.
    struct Join {
      const std::vector<c10::cuda::CUDAStream>& side;
      int S;
      c10::cuda::CUDAStream main;
      std::vector<at::Tensor> made;
      ~Join() {
        try {
          for (int s = 0; s < S; ++s) {
            at::cuda::CUDAEvent done;
            done.record(side[s]);
            done.block(main);
          }
          for (const auto& t : made)
            c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), main);
        } catch (...) {  // a CUDA error here is reported by the next call on the main stream
        }
      }
    } join{side, S, main, {}};
    for (int64_t i = 0; i < n; ++i) {
      c10::cuda::CUDAStreamGuard guard(side[i % S]);
      for (auto& t : fn(i))
        if (t.defined()) join.made.push_back(std::move(t));
    }
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) fn(i);
}

// The dense problems of a plan over q, k, v: appends their outputs, lse and dropout states.
void run_problems(const std::vector<DilatedProblem>& plan, const at::Tensor& q, const at::Tensor& k,
                  const at::Tensor& v, const DilatedAttentionOptions& o,
                  std::vector<at::Tensor>* outs, std::vector<at::Tensor>* lses,
                  std::vector<at::Tensor>* rng) {
  DenseAttentionArgs a = dense_args(o, q.size(3));
  a.causal = o.is_causal;
  const size_t first = outs->size();
  outs->resize(first + plan.size());
  lses->resize(first + plan.size());
  if (rng) rng->resize(first + plan.size());
  run_spread(static_cast<int64_t>(plan.size()), q, [&](int64_t i) {
    auto c = plan_call(plan[i], q, k, v);
    auto r = dense_attention_forward(c.q, c.k, c.v, a);
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
  const int n_chunked = static_cast<int>(chunk_o.segment_lengths.size());
  for (int64_t t0 = 0; t0 < N; t0 += C) {
    const int64_t n = std::min(C, N - t0);
    auto plan = dilated_plan(1, n, H, chunk_o);
    std::vector<at::Tensor> outs, lses;
    run_problems(plan, q.narrow(1, t0, n), k.narrow(1, t0, n), v.narrow(1, t0, n), o, &outs, &lses,
                 nullptr);
    std::vector<MergeSpan> spans(n_chunked, MergeSpan{n, 0});
    spans.resize(n_chunked + rest_o.segment_lengths.size(), MergeSpan{N, t0});
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

// The GPU forward runs in chunks of about kChunkElements (512 MiB of bfloat16) when the problems'
// outputs of a one-piece forward (about one q-sized tensor per branch) would fill more than a
// quarter of the device's memory: this is what lets one GPU hold 2^28 tokens of 4 x 8 heads,
// while sizes that fit run in one piece (chunks serialise problems and merges, which costs time).
// LONGNET_CHUNK_ABOVE=<elements of q> sets the threshold instead (for comparisons).
constexpr int64_t kChunkElements = int64_t(1) << 28;

bool chunk_forward(const at::Tensor& q, const DilatedAttentionOptions& o) {
  static const int64_t forced = [] {
    const char* env = std::getenv("LONGNET_CHUNK_ABOVE");
    if (env == nullptr) return int64_t(-1);
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    TORCH_CHECK(end != env && *end == '\0' && v >= 0, "LONGNET_CHUNK_ABOVE='", env,
                "' must be a whole number of elements (0 chunks every forward)");
    return int64_t(v);
  }();
  if (forced >= 0) return q.numel() > forced;
#ifdef LONGNET_WITH_CUDA
  if (!q.is_cuda()) return false;
  const double outputs =
      double(q.numel()) * double(q.element_size()) * double(o.segment_lengths.size());
  const double memory = double(at::cuda::getDeviceProperties(q.device().index())->totalGlobalMem);
  return outputs > memory / 4;
#else
  return false;
#endif
}

}  // namespace

DilatedForward dilated_attention_forward_fused(const at::Tensor& q_in, const at::Tensor& k_in,
                                               const at::Tensor& v_in,
                                               const DilatedAttentionOptions& o,
                                               int64_t chunk_elements) {
  dilated_inputs_check(q_in, k_in, v_in, o);
  auto q = rowmajor(q_in), k = rowmajor(k_in), v = value_rows(v_in);
  DilatedForward f;
  f.out = at::empty_like(q);
  f.lse = at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(at::kFloat));
  fused_forward_into(q, k, v, o, chunk_elements, f.out, f.lse, &f.rng, &f.lse_parts);
  if (o.dropout == 0) f.rng.clear();
  return f;
}

DilatedForward dilated_attention_forward(const at::Tensor& q_in, const at::Tensor& k_in,
                                         const at::Tensor& v_in, const DilatedAttentionOptions& o) {
  if (use_fused_merge(q_in))
    return dilated_attention_forward_fused(q_in, k_in, v_in, o,
                                           chunk_forward(q_in, o) ? kChunkElements : 0);
  dilated_inputs_check(q_in, k_in, v_in, o);
  auto q = rowmajor(q_in), k = rowmajor(k_in), v = value_rows(v_in);
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
  const auto plan = dilated_plan(B, N, H, o);
  const auto args = dense_args(o, q.size(3));
  DilatedForward f;
  auto acc = q.options().dtype(lse_dtype_for(q.scalar_type()));
  auto out = at::zeros(q.sizes(), acc);
  auto lse = at::full({B, N, H}, -std::numeric_limits<double>::infinity(), acc);
  std::vector<AttentionCall> calls;
  for (const auto& p : plan) {
    AttentionCall c = plan_call(p, q, k, v);
    c.out = dilated_view(out, p);
    c.lse = dilated_view(lse, p);
    c.causal = o.is_causal;
    calls.push_back(std::move(c));
  }
  attention_calls_forward(calls, args);
  f.out = out.to(q.scalar_type());
  f.lse = lse;
  if (o.dropout > 0)
    for (auto& c : calls) f.rng.push_back(c.rng);
  return f;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_attention_backward(
    const at::Tensor& dout_in, const at::Tensor& q_in, const at::Tensor& k_in,
    const at::Tensor& v_in, const at::Tensor& out_in, const at::Tensor& lse,
    const std::vector<at::Tensor>& rng, const DilatedAttentionOptions& o,
    const std::vector<at::Tensor>& lse_parts, bool packed) {
  auto q = rowmajor(q_in), k = rowmajor(k_in), v = value_rows(v_in);
  auto dout = rowmajor(dout_in.to(q.scalar_type())), out = rowmajor(out_in);
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
  auto plan = dilated_plan(B, N, H, o);
  TORCH_CHECK(rng.empty() || rng.size() == plan.size(), "dilated attention backward: ", rng.size(),
              " dropout states for ", plan.size(), " problems");
  TORCH_CHECK(lse_parts.empty() || lse_parts.size() == plan.size(),
              "dilated attention backward: ", lse_parts.size(), " per-problem lse tensors for ",
              plan.size(), " problems");
  const auto args = dense_args(o, q.size(3));
  if (use_fused_merge(q)) {
    std::vector<std::array<at::Tensor, 3>> grads(plan.size());
    run_spread(static_cast<int64_t>(plan.size()), q, [&](int64_t i) {
      const auto& p = plan[i];
      AttentionCall c = plan_call(p, q, k, v);
      DenseAttentionArgs a = args;
      a.causal = o.is_causal;
      auto lse_c = lse_parts.empty() ? dilated_view(lse, p).permute({0, 2, 1}).contiguous()
                                     : lse_parts[i];  // (B', H', n)
      auto [dq, dk, dv] =
          dense_attention_backward(dilated_view(dout, p), c.q, c.k, c.v, dilated_view(out, p),
                                   lse_c, rng.empty() ? at::Tensor() : rng[i], a);
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
  auto acc = q.options().dtype(lse_dtype_for(q.scalar_type()));
  auto dq = at::zeros(q.sizes(), acc), dk = at::zeros(q.sizes(), acc),
       dv = at::zeros(q.sizes(), acc);
  std::vector<AttentionCall> calls;
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& p = plan[i];
    AttentionCall c = plan_call(p, q, k, v);
    c.out = dilated_view(out, p);
    c.lse = dilated_view(lse, p);
    c.dout = dilated_view(dout, p);
    c.dq = dilated_view(dq, p);
    c.dk = dilated_view(dk, p);
    c.dv = dilated_view(dv, p);
    c.causal = o.is_causal;
    if (!rng.empty()) c.rng = rng[i];
    calls.push_back(std::move(c));
  }
  for (auto& c : calls) attention_call_backward(c, args);
  auto t = q.scalar_type();
  return {dq.to(t), dk.to(t), dv.to(t)};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class DilatedAttentionFunction : public torch::autograd::Function<DilatedAttentionFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, const DilatedAttentionOptions& o) {
    // The row-major copies are what both passes read: saving them (not the inputs, often views
    // of one q/k/v projection) spares the backward a second copy. (v may stay a view.)
    auto q = rowmajor(q_in), k = rowmajor(k_in), v = value_rows(v_in);
    auto f = dilated_attention_forward(q, k, v, o);
    std::vector<at::Tensor> save{q, k, v, f.out, f.lse};
    save.insert(save.end(), f.lse_parts.begin(), f.lse_parts.end());
    ctx->save_for_backward(save);
    dilated_ctx_save(ctx, o, q.size(3), f.rng);
    return f.out;
  }

  // The gradients come back packed (slices of one (B, N, 3, H, D) tensor): a fused q/k/v
  // projection's xPos function (xpos.h) then takes them as its input's gradient without a copy.
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto o = dilated_ctx_options(ctx);
    auto rng = dilated_ctx_rng(ctx);
    const std::vector<at::Tensor> lse_parts(saved.begin() + 5, saved.end());
    auto [dq, dk, dv] = dilated_attention_backward(grads[0], saved[0], saved[1], saved[2], saved[3],
                                                   saved[4], rng, o, lse_parts, /*packed=*/true);
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

void dilated_ctx_save(AutogradContext* ctx, const DilatedAttentionOptions& o, int64_t head_dim,
                      const std::vector<at::Tensor>& rng) {
  ctx->saved_data["segment_lengths"] = o.segment_lengths;
  ctx->saved_data["dilation_rates"] = o.dilation_rates;
  ctx->saved_data["is_causal"] = o.is_causal;
  ctx->saved_data["scale"] = dilated_scale(o, head_dim);
  ctx->saved_data["dropout"] = o.dropout;
  if (!rng.empty()) ctx->saved_data["rng"] = c10::List<at::Tensor>(rng);
}

DilatedAttentionOptions dilated_ctx_options(AutogradContext* ctx) {
  DilatedAttentionOptions o;
  o.segment_lengths = ctx->saved_data["segment_lengths"].toIntVector();
  o.dilation_rates = ctx->saved_data["dilation_rates"].toIntVector();
  o.is_causal = ctx->saved_data["is_causal"].toBool();
  o.softmax_scale = ctx->saved_data["scale"].toDouble();
  o.dropout = ctx->saved_data["dropout"].toDouble();
  return o;
}

std::vector<at::Tensor> dilated_ctx_rng(AutogradContext* ctx) {
  if (!ctx->saved_data.count("rng")) return {};
  return ctx->saved_data["rng"].toTensorVector();
}

at::Tensor dilated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const DilatedAttentionOptions& o) {
  dilated_inputs_check(q, k, v, o);
  return DilatedAttentionFunction::apply(q, k, v, o);
}

DilatedAttentionImpl::DilatedAttentionImpl(std::vector<int64_t> segment_lengths,
                                           std::vector<int64_t> dilation_rates,
                                           std::optional<double> softmax_scale,
                                           double attention_dropout) {
  options_.segment_lengths = std::move(segment_lengths);
  options_.dilation_rates = std::move(dilation_rates);
  options_.softmax_scale = softmax_scale;
  options_.dropout = attention_dropout;
  dilated_options_check(options_);
}

at::Tensor DilatedAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key,
                                         const at::Tensor& value, bool is_causal) {
  DilatedAttentionOptions o = options_;
  o.is_causal = is_causal;
  if (!is_training()) o.dropout = 0.0;
  return dilated_attention(query, key, value, o);
}

}  // namespace longnet
