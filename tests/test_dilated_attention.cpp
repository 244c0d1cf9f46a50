// Dilated attention against the brute-force float64 definition (tests/dilated_reference.h):
// outputs and all three gradients over many shapes (odd N, N < w, r not dividing w, the paper's
// r = 6 and 12, H = 12, causal and not, custom scale), plus causality, head coverage, dropout and
// input checks. GPU cases (bf16 with the STYLE.md tolerance rule) skip without a GPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "longnet/core/dilated_attention.h"
#include "longnet/core/dilated_merge.h"
#include "longnet/tests/dilated_reference.h"
#include "longnet/tests/test_util.h"

namespace longnet {
namespace {

using testing::expect_error;
using testing::reference_dilated_attention;
using testing::rel_error;

struct Case {
  int64_t B, N, H, D;
  std::vector<int64_t> w, r;
  bool causal;
  std::optional<double> scale;
  std::string name;
};

// GoogleTest prints parameters by name instead of as bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

struct Grads {
  at::Tensor out, dq, dk, dv;
};

// Runs f on fresh leaves made from q, k, v and back-propagates `gout`.
template <typename F>
Grads run_with_grads(F f, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& gout) {
  // (a strided input stays strided: a leaf sharing its storage)
  auto leaf = [](const at::Tensor& x) {
    return (x.is_contiguous() ? x.detach().clone() : x.detach()).requires_grad_(true);
  };
  auto ql = leaf(q), kl = leaf(k), vl = leaf(v);
  auto out = f(ql, kl, vl);
  out.backward(gout.to(out.scalar_type()));
  return {out.detach(), ql.grad(), kl.grad(), vl.grad()};
}

DilatedAttentionOptions options_of(const Case& c) {
  DilatedAttentionOptions o;
  o.segment_lengths = c.w;
  o.dilation_rates = c.r;
  o.is_causal = c.causal;
  o.softmax_scale = c.scale;
  return o;
}

Grads reference_grads(const Case& c, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const at::Tensor& gout) {
  double scale = c.scale ? *c.scale : 1.0 / std::sqrt(double(c.D));
  return run_with_grads(
      [&](auto& a, auto& b, auto& d) {
        return reference_dilated_attention(a, b, d, c.w, c.r, c.causal, scale);
      },
      q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble), gout.to(at::kDouble));
}

class DilatedAttentionCpu : public ::testing::TestWithParam<Case> {};

TEST_P(DilatedAttentionCpu, Float64MatchesReference) {
  const Case& c = GetParam();
  at::manual_seed(7);
  auto opt = at::TensorOptions().dtype(at::kDouble);
  auto q = at::randn({c.B, c.N, c.H, c.D}, opt), k = at::randn_like(q), v = at::randn_like(q);
  auto gout = at::randn_like(q);
  auto ref = reference_grads(c, q, k, v, gout);
  auto got = run_with_grads(
      [&](auto& a, auto& b, auto& d) { return dilated_attention(a, b, d, options_of(c)); }, q, k, v,
      gout);
  EXPECT_LT(rel_error(got.out, ref.out), 1e-12);
  EXPECT_LT(rel_error(got.dq, ref.dq), 1e-11);
  EXPECT_LT(rel_error(got.dk, ref.dk), 1e-11);
  EXPECT_LT(rel_error(got.dv, ref.dv), 1e-11);
}

TEST_P(DilatedAttentionCpu, Float32CloseToReference) {
  const Case& c = GetParam();
  at::manual_seed(11);
  auto q = at::randn({c.B, c.N, c.H, c.D}), k = at::randn_like(q), v = at::randn_like(q);
  auto gout = at::randn_like(q);
  auto ref = reference_grads(c, q, k, v, gout);
  auto got = run_with_grads(
      [&](auto& a, auto& b, auto& d) { return dilated_attention(a, b, d, options_of(c)); }, q, k, v,
      gout);
  EXPECT_EQ(got.out.scalar_type(), at::kFloat);
  EXPECT_LT(rel_error(got.out, ref.out), 1e-5);
  EXPECT_LT(rel_error(got.dq, ref.dq), 1e-4);
  EXPECT_LT(rel_error(got.dk, ref.dk), 1e-4);
  EXPECT_LT(rel_error(got.dv, ref.dv), 1e-4);
}

// The fused GPU merge's index maths (core/dilated_merge.h), run by its host emulation, gives
// the same out, lse and gradients as the plain merge; written back, every problem's lse holds
// the merged lse of its rows; gradients written as slices of one (B, N, 3, H, D) tensor equal
// the separate ones.
TEST_P(DilatedAttentionCpu, FusedMergeEmulationMatchesPlainMerge) {
  const Case& c = GetParam();
  at::manual_seed(13);
  auto q = at::randn({c.B, c.N, c.H, c.D}), k = at::randn_like(q), v = at::randn_like(q);
  auto gout = at::randn_like(q);
  auto o = options_of(c);
  auto plan = dilated_plan(c.B, c.N, c.H, o);
  DenseAttentionArgs a;
  a.scale = dilated_scale(o, c.D);
  a.causal = c.causal;
  auto ref = dilated_attention_forward(q, k, v, o);
  std::vector<at::Tensor> outs, lses;
  for (const auto& p : plan) {
    auto r = dense_attention_forward(dilated_view(q, p), dilated_view(k, p), dilated_view(v, p), a);
    outs.push_back(r.out);
    lses.push_back(r.lse + std::log(double(p.copies)));  // identical branches count p.copies times
  }
  auto out = at::empty_like(q), lse = at::empty({c.B, c.N, c.H});
  dilated_merge_forward(plan, c.B, c.N, c.H, outs, lses, out, lse);
  EXPECT_LT(rel_error(out, ref.out), 1e-6);
  EXPECT_TRUE(at::equal(lse.isinf(), ref.lse.isinf()));
  EXPECT_LT(rel_error(lse.masked_fill(lse.isinf(), 0), ref.lse.masked_fill(ref.lse.isinf(), 0)),
            1e-6);
  std::vector<at::Tensor> written;
  for (const auto& l : lses) written.push_back(l.clone());
  auto out2 = at::empty_like(q), lse2 = at::empty_like(lse);
  dilated_merge_forward(plan, c.B, c.N, c.H, outs, written, out2, lse2, {},
                        /*write_back_lse=*/true);
  EXPECT_TRUE(at::equal(out2, out));
  EXPECT_TRUE(at::equal(lse2, lse));
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_TRUE(at::equal(written[i], dilated_view(lse, plan[i]).permute({0, 2, 1})))
        << "problem " << i;
  }

  auto [rdq, rdk, rdv] = dilated_attention_backward(gout, q, k, v, ref.out, ref.lse, {}, o);
  std::vector<std::array<at::Tensor, 3>> grads;
  for (const auto& p : plan) {
    auto lse_c = dilated_view(ref.lse, p).permute({0, 2, 1}).contiguous();
    auto [dq, dk, dv] = dense_attention_backward(dilated_view(gout, p), dilated_view(q, p),
                                                 dilated_view(k, p), dilated_view(v, p),
                                                 dilated_view(ref.out, p), lse_c, at::Tensor(), a);
    const double m = double(p.copies);
    grads.push_back({dq * m, dk * m, dv * m});
  }
  std::array<at::Tensor, 3> d{at::empty_like(q), at::empty_like(q), at::empty_like(q)};
  dilated_merge_backward(plan, c.B, c.N, c.H, grads, d);
  EXPECT_LT(rel_error(d[0], rdq), 1e-6);
  EXPECT_LT(rel_error(d[1], rdk), 1e-6);
  EXPECT_LT(rel_error(d[2], rdv), 1e-6);
  auto packed = at::full({c.B, c.N, 3, c.H, c.D}, 7.0);
  std::array<at::Tensor, 3> dp{packed.select(2, 0), packed.select(2, 1), packed.select(2, 2)};
  dilated_merge_backward(plan, c.B, c.N, c.H, grads, dp);
  for (int t = 0; t < 3; ++t) EXPECT_TRUE(at::equal(dp[t], d[t])) << "gradient " << t;
}

// The chunked fused forward (dilated_fused_forward with a chunk budget: batch
// slices, chunks of the short-segment branches, long branches once) gives the plain forward's
// out and lse, for budgets that chunk every branch, some, or none.
TEST_P(DilatedAttentionCpu, ChunkedFusedForwardMatchesWhole) {
  const Case& c = GetParam();
  at::manual_seed(17);
  auto q = at::randn({c.B, c.N, c.H, c.D}), k = at::randn_like(q), v = at::randn_like(q);
  auto o = options_of(c);
  auto ref = dilated_attention_forward(q, k, v, o);
  for (int64_t tokens : {1, 7, 40, 100, 300}) {
    SCOPED_TRACE("chunk of " + std::to_string(tokens) + " tokens");
    auto got = dilated_fused_forward(q, k, v, o, tokens * c.H * c.D);
    EXPECT_LT(rel_error(got.out, ref.out), 1e-6);
    EXPECT_TRUE(at::equal(got.lse.isinf(), ref.lse.isinf()));
    EXPECT_LT(
        rel_error(got.lse.masked_fill(got.lse.isinf(), 0), ref.lse.masked_fill(ref.lse.isinf(), 0)),
        1e-6);
  }
}

const std::vector<Case> kCases = {
    {2, 64, 4, 8, {16, 32}, {1, 2}, false, {}, "Basic_N64_w16_32_r1_2"},
    {2, 64, 4, 8, {16, 32}, {1, 2}, true, {}, "BasicCausal_N64_w16_32_r1_2"},
    {1, 1000, 3, 8, {128, 256, 512}, {1, 2, 4}, false, {}, "N1000_w128_256_512"},
    {1, 1000, 3, 8, {128, 256, 512}, {1, 2, 4}, true, {}, "N1000Causal_w128_256_512"},
    {1, 200, 12, 8, {48, 96}, {6, 12}, false, {}, "H12_r6_12_w48_96"},
    {1, 200, 12, 8, {48, 96}, {6, 12}, true, {}, "H12Causal_r6_12_w48_96"},
    {1, 384, 12, 8, {16, 32, 64, 96, 192}, {1, 2, 4, 6, 12}, true, {}, "PaperRatesCausal_N384"},
    {1, 37, 2, 8, {64, 128}, {1, 2}, false, {}, "NShorterThanSegments_N37"},
    {1, 37, 2, 8, {64, 128}, {1, 2}, true, {}, "NShorterThanSegmentsCausal_N37"},
    {2, 127, 5, 8, {10, 20}, {3, 7}, false, {}, "RNotDividingW_N127_r3_7"},
    {2, 127, 5, 8, {10, 20}, {3, 7}, true, {}, "RNotDividingWCausal_N127_r3_7"},
    {3, 101, 4, 16, {16, 50}, {2, 4}, true, {}, "Batch3TailSegments_N101"},
    {2, 60, 4, 8, {20, 30}, {1, 3}, false, 0.3, "CustomScale0p3_N60"},
    {1, 50, 16, 8, {4, 8}, {8, 16}, false, {}, "RateAboveSegment_w4_r8"},
    {2, 17, 3, 8, {17}, {1}, true, {}, "DenseCausal_N17_w17"},
    {1, 48, 4, 8, {16, 16}, {2, 2}, false, {}, "RepeatedBranchCountsTwice"},
    // Branches identical only once clipped to N (the reference library's Figure-5 schedule at
    // its shortest N): planned once, counted as often as they appear.
    {2, 37, 4, 8, {64, 128, 37}, {1, 1, 2}, true, {}, "IdenticalAfterClipping_N37"},
    {1, 16, 2, 8, {16, 32, 64}, {1, 1, 1}, false, {}, "ThreeIdenticalAfterClipping_N16"},
    // The largest segment lengths and rates the options allow (2^40): clipped to N, a rate above
    // the rows and heads there are selects one row per class (no stride overflow).
    {2,
     45,
     3,
     8,
     {int64_t(1) << 40, 9},
     {int64_t(1) << 40, (int64_t(1) << 40) - 1},
     true,
     {},
     "HugeSegmentAndRate_2pow40"},
};

INSTANTIATE_TEST_SUITE_P(Cases, DilatedAttentionCpu, ::testing::ValuesIn(kCases), case_name);

// GPU: bfloat16 / float16 through the SDPA kernels and the fused merge, float32 through the
// maths path. Tolerance rule (STYLE.md): the error against float64 may be at most about twice
// that of the same maths done naively in the same precision (the reference formula evaluated
// in that dtype on the GPU), outputs and gradients alike.
class DilatedAttentionGpu : public ::testing::TestWithParam<Case> {};

void check_gpu_dtype(const Case& c, at::ScalarType dtype) {
  at::manual_seed(17);
  auto q = at::randn({c.B, c.N, c.H, c.D}, at::kDouble), k = at::randn_like(q),
       v = at::randn_like(q), gout = at::randn_like(q);
  auto ref = reference_grads(c, q, k, v, gout);
  auto cuda = [&](const at::Tensor& x) { return x.to(at::kCUDA).to(dtype); };
  // Both sides start from the same rounded inputs; v as the model passes it, a slice of one
  // fused (B, N, 3, H, D) projection (which the GPU path reads in place).
  auto qkv = at::zeros({c.B, c.N, 3, c.H, c.D}, at::TensorOptions().device(at::kCUDA).dtype(dtype));
  qkv.select(2, 2).copy_(cuda(v));
  auto qd = cuda(q), kd = cuda(k), vd = qkv.select(2, 2), gd = cuda(gout);
  auto got = run_with_grads(
      [&](auto& a, auto& b, auto& d) { return dilated_attention(a, b, d, options_of(c)); }, qd, kd,
      vd, gd);
  double scale = c.scale ? *c.scale : 1.0 / std::sqrt(double(c.D));
  auto naive = run_with_grads(
      [&](auto& a, auto& b, auto& d) {
        return reference_dilated_attention(a, b, d, c.w, c.r, c.causal, scale);
      },
      qd, kd, vd, gd);
  const char* names[] = {"out", "dq", "dk", "dv"};
  at::Tensor g[] = {got.out, got.dq, got.dk, got.dv},
             n[] = {naive.out, naive.dq, naive.dk, naive.dv},
             r[] = {ref.out, ref.dq, ref.dk, ref.dv};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(g[i].scalar_type(), dtype);
    const double e = rel_error(g[i], r[i]), e_naive = rel_error(n[i], r[i]);
    // The floor serves rows whose exact gradient vanishes (one key per query), where the naive
    // maths can round to exactly zero.
    EXPECT_LE(e, 2.0 * e_naive + 1e-4) << names[i] << ": error " << e << ", naive " << e_naive;
    EXPECT_TRUE(at::isfinite(g[i]).all().item<bool>()) << names[i];
  }
}

TEST_P(DilatedAttentionGpu, Bfloat16WithinTwiceNaiveError) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  check_gpu_dtype(GetParam(), at::kBFloat16);
}

TEST_P(DilatedAttentionGpu, Float16WithinTwiceNaiveError) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  check_gpu_dtype(GetParam(), at::kHalf);
}

TEST_P(DilatedAttentionGpu, Float32CloseToReference) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  const Case& c = GetParam();
  at::manual_seed(19);
  auto q = at::randn({c.B, c.N, c.H, c.D}), k = at::randn_like(q), v = at::randn_like(q),
       gout = at::randn_like(q);
  auto ref = reference_grads(c, q, k, v, gout);
  auto got = run_with_grads(
      [&](auto& a, auto& b, auto& d) { return dilated_attention(a, b, d, options_of(c)); },
      q.cuda(), k.cuda(), v.cuda(), gout.cuda());
  EXPECT_LT(rel_error(got.out, ref.out), 1e-4);
  EXPECT_LT(rel_error(got.dq, ref.dq), 1e-3);
  EXPECT_LT(rel_error(got.dk, ref.dk), 1e-3);
  EXPECT_LT(rel_error(got.dv, ref.dv), 1e-3);
}

// The chunked GPU forward (the kernel's merge spans) against the one-piece GPU forward: the
// same problems merged in pieces, so equal up to the order of float additions.
TEST_P(DilatedAttentionGpu, ChunkedForwardMatchesWhole) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  const Case& c = GetParam();
  at::manual_seed(29);
  auto q = at::randn({c.B, c.N, c.H, c.D},
                     at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16)),
       k = at::randn_like(q), v = at::randn_like(q);
  auto o = options_of(c);
  auto whole = dilated_fused_forward(q, k, v, o, 0);
  for (int64_t tokens : {1, 7, 40, 100}) {
    SCOPED_TRACE("chunk of " + std::to_string(tokens) + " tokens");
    auto got = dilated_fused_forward(q, k, v, o, tokens * c.H * c.D);
    EXPECT_LT(rel_error(got.out.to(at::kFloat), whole.out.to(at::kFloat)), 1e-2);
    EXPECT_TRUE(at::equal(got.lse.isinf(), whole.lse.isinf()));
    EXPECT_LT(rel_error(got.lse.masked_fill(got.lse.isinf(), 0),
                        whole.lse.masked_fill(whole.lse.isinf(), 0)),
              1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, DilatedAttentionGpu, ::testing::ValuesIn(kCases), case_name);

TEST(DilatedAttentionGpuOnly, PaperConfigLongSequenceBf16MatchesFloat32Path) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  // The paper's branches at N = 32768 (r = 6, 12 with w = 16384, 32768), against the float32
  // maths path on the same GPU: errors of bf16 rounding only.
  at::manual_seed(23);
  DilatedAttentionOptions o{{2048, 4096, 8192, 16384, 32768}, {1, 2, 4, 6, 12}, true, {}, 0.0, {}};
  auto q = at::randn({1, 32768, 12, 64}, at::kCUDA), k = at::randn_like(q), v = at::randn_like(q),
       gout = at::randn_like(q);
  auto f32 = run_with_grads(
      [&](auto& a, auto& b, auto& d) { return dilated_attention(a, b, d, o); }, q, k, v, gout);
  auto bf = run_with_grads([&](auto& a, auto& b, auto& d) { return dilated_attention(a, b, d, o); },
                           q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16),
                           gout.to(at::kBFloat16));
  EXPECT_LT(rel_error(bf.out, f32.out), 2e-2);
  EXPECT_LT(rel_error(bf.dq, f32.dq), 3e-2);
  EXPECT_LT(rel_error(bf.dk, f32.dk), 3e-2);
  EXPECT_LT(rel_error(bf.dv, f32.dv), 3e-2);
}

// With |q| of 1e2 to 1e6 (q = k, so logits of about 3e4 to 3e12) the merged lse rounds
// (logaddexp(a, a) is a in float32 past ~1e7),
// so weights exp(lse_c - lse) alone would not sum to 1 and rows would leave the values' range
// (up to twice V with two branches). Every engine normalises: with V all ones every output is 1.
TEST(DilatedAttention, LargeLogitsKeepRowsWeightedAverages) {
  std::vector<c10::Device> devices{c10::kCPU};
  if (at::hasCUDA()) devices.push_back(c10::Device(c10::kCUDA, 0));
  for (const auto& device : devices) {
    for (bool fused : {false, true}) {
      if (fused && !device.is_cuda()) continue;
      for (double magnitude : {1e2, 1e4, 1e6}) {
        for (bool causal : {false, true}) {
          at::manual_seed(5);
          DilatedAttentionOptions o{{4, 8, 16}, {1, 1, 2}, causal, {}, 0.0, {}};
          o.engine.fused_merge = fused;
          const auto t = at::TensorOptions().device(device);
          auto q = at::randn({2, 16, 2, 8}, t) * magnitude;
          auto v = at::ones({2, 16, 2, 8}, t);
          auto out = dilated_attention(q, q, v, o).cpu();
          EXPECT_LT((out - 1).abs().max().item<double>(), 1e-5)
              << device << (fused ? " fused" : " plain") << " merge, |q| ~ " << magnitude
              << (causal ? ", causal" : "");
        }
      }
    }
  }
  // The fused merge's host emulation likewise.
  const int64_t B = 1, N = 16, H = 2, D = 8;
  DilatedAttentionOptions o{{4, 8, 16}, {1, 1, 2}, false, {}, 0.0, {}};
  auto plan = dilated_plan(B, N, H, o);
  std::vector<at::Tensor> outs, lses;
  for (const auto& p : plan) {
    auto view = dilated_view(at::ones({B, N, H, D}), p);
    outs.push_back(view.contiguous());
    lses.push_back(at::full({view.size(0), view.size(2), view.size(1)}, 3e7f));
  }
  auto out = at::empty({B, N, H, D}), lse = at::empty({B, N, H});
  dilated_merge_forward(plan, B, N, H, outs, lses, out, lse);
  EXPECT_LT((out - 1).abs().max().item<double>(), 1e-6);
}

TEST(DilatedAttention, CausalNoLookahead_PerturbFutureToken) {
  at::manual_seed(3);
  DilatedAttentionOptions o{{8, 16, 32}, {1, 2, 4}, true, {}, 0.0, {}};
  auto q = at::randn({1, 64, 4, 8}), k = at::randn_like(q), v = at::randn_like(q);
  auto base = dilated_attention(q, k, v, o);
  for (int64_t t : {5, 17, 40, 63}) {
    auto q2 = q.clone(), k2 = k.clone(), v2 = v.clone();
    q2.select(1, t).add_(10.0);
    k2.select(1, t).add_(10.0);
    v2.select(1, t).add_(10.0);
    auto out = dilated_attention(q2, k2, v2, o);
    EXPECT_TRUE(at::equal(out.narrow(1, 0, t), base.narrow(1, 0, t))) << "token " << t;
    EXPECT_FALSE(at::equal(out, base)) << "perturbing token " << t << " changed nothing";
  }
}

TEST(DilatedAttention, EveryHeadGetsGradient_H12_r6_12) {
  at::manual_seed(5);
  DilatedAttentionOptions o{{24, 48}, {6, 12}, false, {}, 0.0, {}};
  auto q = torch::randn({1, 96, 12, 8}, torch::requires_grad()),
       k = torch::randn({1, 96, 12, 8}, torch::requires_grad()),
       v = torch::randn({1, 96, 12, 8}, torch::requires_grad());
  auto out = dilated_attention(q, k, v, o);
  (out * at::randn_like(out)).sum().backward();
  for (int64_t h = 0; h < 12; ++h) {
    EXPECT_GT(out.select(2, h).abs().sum().item<double>(), 0) << "head " << h << " output";
    EXPECT_GT(q.grad().select(2, h).abs().sum().item<double>(), 0) << "head " << h << " dq";
    EXPECT_GT(k.grad().select(2, h).abs().sum().item<double>(), 0) << "head " << h << " dk";
    EXPECT_GT(v.grad().select(2, h).abs().sum().item<double>(), 0) << "head " << h << " dv";
  }
}

TEST(DilatedAttention, NonContiguousInputsMatchContiguous) {
  at::manual_seed(9);
  DilatedAttentionOptions o{{16, 32}, {1, 2}, true, {}, 0.0, {}};
  // q, k, v as slices of one fused projection (B, N, 3, H, D).
  auto qkv = at::randn({2, 50, 3, 4, 8}, at::kDouble);
  auto q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
  auto a = dilated_attention(q, k, v, o);
  auto b = dilated_attention(q.contiguous(), k.contiguous(), v.contiguous(), o);
  EXPECT_LT(rel_error(a, b), 1e-14);
}

// On the GPU, separate contiguous leaves get contiguous gradients (no copy into .grad's layout);
// q, k, v as views of one fused projection get the same gradients (packed, then summed by the
// views' backward into the projection's).
TEST(DilatedAttentionGpuOnly, GradientLayoutFollowsInputs) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(12);
  DilatedAttentionOptions o{{16, 32}, {1, 2}, true, {}, 0.0, {}};
  auto qkv = at::randn({2, 50, 3, 4, 8}, at::kCUDA);
  auto g = at::randn({2, 50, 4, 8}, at::kCUDA);
  std::vector<at::Tensor> leaves;
  for (int t = 0; t < 3; ++t) leaves.push_back(qkv.select(2, t).contiguous().requires_grad_(true));
  dilated_attention(leaves[0], leaves[1], leaves[2], o).backward(g);
  auto fused = qkv.clone().requires_grad_(true);
  dilated_attention(fused.select(2, 0), fused.select(2, 1), fused.select(2, 2), o).backward(g);
  for (int t = 0; t < 3; ++t) {
    EXPECT_TRUE(leaves[t].grad().is_contiguous()) << "input " << t;
    EXPECT_LT(rel_error(fused.grad().select(2, t), leaves[t].grad()), 1e-6) << "input " << t;
  }
}

// Dropout: a fixed seed gives a fixed mask, so finite differences check the gradient.
TEST(DilatedAttention, DropoutGradientMatchesFiniteDifferences) {
  DilatedAttentionOptions o{{8, 16}, {1, 2}, true, {}, 0.25, {}};
  at::manual_seed(1);
  auto q = at::randn({1, 24, 2, 8}, at::kDouble), k = at::randn_like(q), v = at::randn_like(q);
  auto gout = at::randn_like(q);
  auto loss = [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
    at::manual_seed(99);
    return (dilated_attention(a, b, c, o) * gout).sum();
  };
  auto ql = q.clone().requires_grad_(true), kl = k.clone().requires_grad_(true),
       vl = v.clone().requires_grad_(true);
  loss(ql, kl, vl).backward();
  // Dropout really drops: differs from the same call without dropout.
  DilatedAttentionOptions nodrop = o;
  nodrop.dropout = 0;
  at::manual_seed(99);
  EXPECT_FALSE(at::allclose(dilated_attention(q, k, v, o), dilated_attention(q, k, v, nodrop)));
  const double eps = 1e-6;
  for (int which = 0; which < 3; ++which) {
    auto grad = (which == 0 ? ql : which == 1 ? kl : vl).grad();
    for (int64_t idx : {3, 50, 111, 200, 377}) {
      auto plus = std::vector<at::Tensor>{q.clone(), k.clone(), v.clone()};
      auto minus = std::vector<at::Tensor>{q.clone(), k.clone(), v.clone()};
      plus[which].view(-1)[idx] += eps;
      minus[which].view(-1)[idx] -= eps;
      double fd =
          (loss(plus[0], plus[1], plus[2]) - loss(minus[0], minus[1], minus[2])).item<double>() /
          (2 * eps);
      EXPECT_NEAR(grad.view(-1)[idx].item<double>(), fd, 1e-6)
          << "tensor " << which << " idx " << idx;
    }
  }
}

TEST(DilatedAttention, ModuleDropoutOnlyInTraining) {
  at::manual_seed(2);
  DilatedAttention attn(std::vector<int64_t>{8, 16}, std::vector<int64_t>{1, 2}, std::nullopt, 0.5);
  auto q = at::randn({1, 32, 2, 8}), k = at::randn_like(q), v = at::randn_like(q);
  attn->eval();
  DilatedAttentionOptions o{{8, 16}, {1, 2}, false, {}, 0.0, {}};
  EXPECT_TRUE(at::equal(attn->forward(q, k, v), dilated_attention(q, k, v, o)));
  attn->train();
  EXPECT_FALSE(at::allclose(attn->forward(q, k, v), dilated_attention(q, k, v, o)));
}

// The backward's kernels are not differentiable: a gradient of the gradient is refused clearly,
// while first derivatives (also with retain_graph) work.
TEST(DilatedAttention, DoubleBackwardIsRefusedClearly) {
  auto q = at::randn({1, 16, 2, 8}).requires_grad_(), k = at::randn({1, 16, 2, 8}),
       v = at::randn({1, 16, 2, 8});
  DilatedAttentionOptions o{{8, 16}, {1, 2}, true, {}, 0.0, {}};
  auto out = dilated_attention(q, k, v, o);
  auto g = torch::autograd::grad({out.pow(2).sum()}, {q}, {}, /*retain_graph=*/true);
  EXPECT_TRUE(g[0].defined());
  expect_error(
      [&] {
        auto gg = torch::autograd::grad({out.pow(2).sum()}, {q}, {}, true, /*create_graph=*/true);
        gg[0].sum().backward();
      },
      "double backward is not supported");
}

// Identical (clipped) branches become one problem set with copies; with dropout each keeps its own.
TEST(DilatedAttention, PlanComputesIdenticalBranchesOnce) {
  DilatedAttentionOptions o{{8192, 16384, 32768}, {1, 1, 1}, true, {}, 0.0, {}};
  const auto plan = dilated_plan(2, 8192, 4, o);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].copies, 3);
  EXPECT_EQ(dilated_branch_count(plan), 1);
  o.dropout = 0.1;
  EXPECT_EQ(dilated_plan(2, 8192, 4, o).size(), 3u);
  o.dropout = 0.0;
  EXPECT_EQ(dilated_plan(2, 65536, 4, o).size(), 3u);  // distinct when N is longer
}

TEST(DilatedAttention, BadInputsGiveClearErrors) {
  auto q = at::randn({1, 16, 2, 8});
  auto ok = [&](DilatedAttentionOptions o) { return [o, q] { dilated_attention(q, q, q, o); }; };
  expect_error(ok({{8, 16}, {1}, false, {}, 0, {}}), "must have the same length");
  expect_error(ok({{}, {}, false, {}, 0, {}}), "segment_lengths: is empty");
  expect_error(ok({{8, 0}, {1, 1}, false, {}, 0, {}}),
               "segment_lengths[1]: 0 is out of range; it must be >= 1");
  expect_error(ok({{8}, {-2}, false, {}, 0, {}}),
               "dilation_rates[0]: -2 is out of range; it must be >= 1");
  expect_error(ok({{8}, {1}, false, {}, 1.0, {}}), "dropout: must be in [0, 1)");
  DilatedAttentionOptions o{{8}, {1}, false, {}, 0, {}};
  expect_error([&] { dilated_attention(q[0], q[0], q[0], o); }, "must be (batch, seq_len, heads");
  expect_error([&] { dilated_attention(q, q.narrow(1, 0, 8), q, o); }, "same shape");
  expect_error([&] { dilated_attention(q, q.to(at::kDouble), q, o); }, "same dtype");
  expect_error([&] { dilated_attention(q, q, q.to(at::kLong), o); }, "same dtype");
  expect_error(
      [&] {
        DilatedAttention(std::vector<int64_t>{8}, std::vector<int64_t>{1, 2});
      },
      "must have the same length");
}

}  // namespace
}  // namespace longnet
