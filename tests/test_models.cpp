// Models on the CPU with small sizes: multi-head dilated attention against LibTorch SDPA, xPos
// against torchscale's formula (and finite at a billion tokens), LongNetLM causality, parameter
// count and gradients in both variants, parameter files (C++ and Python round trips), bad inputs.
#include <ATen/autocast_mode.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

#include "longnet/core/layer_norm.h"
#include "longnet/core/little_endian.h"
#include "longnet/core/longnet_model.h"
#include "longnet/core/multihead_dilated_attention.h"
#include "longnet/core/parameter_io.h"
#include "longnet/core/xpos.h"
#include "longnet/tests/dilated_reference.h"
#include "longnet/tests/test_util.h"

#ifndef LONGNET_TEST_PYTHON
#define LONGNET_TEST_PYTHON ""
#endif

namespace longnet {
namespace {

using testing::expect_error;
using testing::rel_error;

// A fresh directory for one test's files. (POSIX calls rather than std::filesystem: libtorch.so
// exports std::filesystem symbols of another ABI that the dynamic linker may pick.)
std::string temp_dir() {
  std::string tmpl = ::testing::TempDir() + "longnet_models_XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr) << "mkdtemp " << tmpl;
  return tmpl;
}

// The names in a directory, "." and ".." left out.
std::vector<std::string> dir_list(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.push_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

// Removes a flat directory made by temp_dir().
void dir_remove(const std::string& dir) {
  for (const auto& name : dir_list(dir)) ::unlink((dir + "/" + name).c_str());
  ::rmdir(dir.c_str());
}

// ---- multi-head dilated attention --------------------------------------------------------------

// Plain multi-head attention with the module's weights: x (B, N, E) -> (B, N, E).
// Layer options for a stand-alone MultiheadDilatedAttention.
LayerOptions mhda_options(int64_t embed_dim, int64_t heads, std::vector<int64_t> w,
                          std::vector<int64_t> r, double gamma = 1.0) {
  LayerOptions o;
  o.d_model = embed_dim;
  o.num_heads = heads;
  o.attention.segment_lengths = std::move(w);
  o.attention.dilation_rates = std::move(r);
  o.gamma_init = gamma;
  return o;
}

at::Tensor mha_reference(MultiheadDilatedAttention& m, const at::Tensor& query,
                         const at::Tensor& key, const at::Tensor& value, bool causal, bool use_xpos,
                         const std::vector<int64_t>& w) {
  const int64_t B = query.size(0), N = query.size(1), H = m->num_heads(), D = m->head_dim();
  auto proj = [&](torch::nn::Linear& l, const at::Tensor& x) {
    return at::linear(x, l->weight, l->bias).view({B, N, H, D});
  };
  auto q = proj(m->q_proj, query), k = proj(m->k_proj, key), v = proj(m->v_proj, value);
  if (use_xpos) std::tie(q, k) = xpos_apply(q, k, 0, N, w);
  auto o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                            {}, 0.0, causal)
               .transpose(1, 2)
               .reshape({B, N, H * D});
  if (m->norm) o = m->norm(o);
  return at::linear(o, m->out_proj->weight, m->out_proj->bias);
}

TEST(MultiheadDilatedAttention, OneDenseBranchEqualsSdpa_N13_w16_r1) {
  torch::NoGradGuard no_grad;
  at::manual_seed(1);
  MultiheadDilatedAttention m(mhda_options(32, 4, {16}, {1}, 1.3), /*sub_layer_norm=*/false,
                              /*bias=*/true, /*xpos=*/false);
  m->to(at::kDouble);
  // Non-zero biases, so that their paths are checked too.
  for (auto& p : m->parameters()) p.normal_();
  auto x = at::randn({2, 13, 32}, at::kDouble), y = at::randn_like(x), z = at::randn_like(x);
  for (bool causal : {false, true}) {
    auto got = m->forward(x, y, z, causal);
    auto want = mha_reference(m, x, y, z, causal, false, {16});
    EXPECT_LT(rel_error(got, want), 1e-12) << "causal " << causal;
  }
}

TEST(MultiheadDilatedAttention, XposAndSubLnEqualManual_N13_w16_r1) {
  torch::NoGradGuard no_grad;
  at::manual_seed(2);
  MultiheadDilatedAttention m(mhda_options(32, 4, {16}, {1}));
  m->to(at::kDouble);
  for (auto& p : m->parameters()) p.normal_();
  auto x = at::randn({2, 13, 32}, at::kDouble);
  for (bool causal : {false, true}) {
    auto got = m->forward(x, x, x, causal);
    auto want = mha_reference(m, x, x, x, causal, true, {16});
    EXPECT_LT(rel_error(got, want), 1e-12) << "causal " << causal;
  }
}

// A backend that claims to hold tokens [32, 64) of a 64-token sequence (as rank 1 of 2 would).
class SecondHalfBackend : public AttentionBackend {
 public:
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const DilatedAttentionOptions& o) override {
    seen_q = q;
    return dilated_attention(q, k, v, o);
  }
  int64_t position_offset(int64_t local_len) const override { return 32; }
  int64_t global_len(int64_t local_len) const override { return 64; }
  at::Tensor seen_q;  // (B, N_local, H, D)
};

TEST(MultiheadDilatedAttention, XposUsesBackendGlobalPositions) {
  torch::NoGradGuard no_grad;
  at::manual_seed(4);
  const std::vector<int64_t> w = {8, 16}, r = {1, 2};
  MultiheadDilatedAttention m(mhda_options(16, 2, w, r));
  auto x = at::randn({1, 32, 16});
  SecondHalfBackend backend;
  m->forward(x, x, x, true, backend);
  auto q = at::linear(x, m->q_proj->weight, m->q_proj->bias).view({1, 32, 2, 8});
  auto [want, unused] = xpos_apply(q, q, 32, 64, w);
  EXPECT_TRUE(at::allclose(backend.seen_q, want, 1e-6, 1e-6));
}

TEST(MultiheadDilatedAttention, MagnetoInit) {
  at::manual_seed(3);
  MultiheadDilatedAttention m(mhda_options(256, 4, {16}, {1}, /*gamma=*/2.0));
  // xavier_normal_ std = gain * sqrt(2 / (fan_in + fan_out)).
  const double base = std::sqrt(2.0 / 512);
  EXPECT_NEAR(m->q_proj->weight.std().item<double>(), base, 0.05 * base);
  EXPECT_NEAR(m->k_proj->weight.std().item<double>(), base, 0.05 * base);
  EXPECT_NEAR(m->v_proj->weight.std().item<double>(), 2 * base, 0.1 * base);
  EXPECT_NEAR(m->out_proj->weight.std().item<double>(), 2 * base, 0.1 * base);
  for (auto* l : {&m->q_proj, &m->k_proj, &m->v_proj, &m->out_proj})
    EXPECT_EQ((*l)->bias.abs().sum().item<double>(), 0.0);
  std::vector<std::string> names;
  for (auto& p : m->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names,
            (std::vector<std::string>{"q_proj.weight", "q_proj.bias", "k_proj.weight",
                                      "k_proj.bias", "v_proj.weight", "v_proj.bias", "norm.weight",
                                      "norm.bias", "out_proj.weight", "out_proj.bias"}));
}

// ---- xPos ------------------------------------------------------------------------------------

// torchscale's XPOS as written, with global positions first_pos, first_pos + 1, ... and no
// centring: x (B, N, H, D) float64 -> rotated by n theta_i and scaled by zeta_i^(+-n / 512).
at::Tensor xpos_torchscale(const at::Tensor& x, double first_pos, bool downscale) {
  const int64_t N = x.size(1), D = x.size(3);
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto n = at::arange(N, f64).add(first_pos).unsqueeze(1);  // (N, 1)
  auto i2 = at::arange(0, D, 2, f64);
  auto theta = at::pow(10000.0, -i2 / double(D));
  auto zeta = (i2 + 0.4 * D) / (1.4 * D);
  auto scale = at::pow(zeta, n / 512.0);  // (N, D/2)
  if (downscale) scale = 1.0 / scale;
  auto sin = (at::sin(n * theta) * scale).repeat_interleave(2, -1).view({1, N, 1, D});
  auto cos = (at::cos(n * theta) * scale).repeat_interleave(2, -1).view({1, N, 1, D});
  auto pairs = x.unflatten(-1, {D / 2, 2});
  auto rot = at::stack({-pairs.select(-1, 1), pairs.select(-1, 0)}, -1).flatten(-2);
  return x * cos + rot * sin;
}

// Attention logits q_n . k_m per head: (B, H, N, N).
at::Tensor logits_of(const at::Tensor& q, const at::Tensor& k) {
  return at::matmul(q.transpose(1, 2).to(at::kDouble), k.transpose(1, 2).to(at::kDouble).mT());
}

// (N, N) bool: tokens n and m (global first_pos + index) share the block of length W (W = 0: all).
at::Tensor same_block(int64_t N, int64_t first_pos, int64_t W) {
  if (W == 0) return at::ones({N, N}, at::kBool);
  auto b = at::div(at::arange(first_pos, first_pos + N), W, "floor");
  return b.unsqueeze(1) == b.unsqueeze(0);
}

struct XposCase {
  int64_t offset, n_local, global_len;
  std::vector<int64_t> w;
};

TEST(XPos, StableEqualsTorchscaleFormulaWithinSegments) {
  at::manual_seed(4);
  const std::vector<XposCase> cases = {
      {0, 64, 64, {16, 32}},       // block-aligned
      {5000, 64, 8192, {16, 32}},  // mid-sequence shard, not block-aligned
      {0, 70, 70, {10, 20, 30}},   // 20 does not divide 30: one centre N / 2 for all
      {3, 37, 40, {64, 128}},      // segments longer than the sequence
  };
  for (const auto& c : cases) {
    SCOPED_TRACE("offset " + std::to_string(c.offset) + " n_local " + std::to_string(c.n_local));
    auto q = at::randn({2, c.n_local, 3, 16}, at::kDouble), k = at::randn_like(q);
    auto [qs, ks] = xpos_apply(q, k, c.offset, c.global_len, c.w);
    auto want = logits_of(xpos_torchscale(q, c.offset, false), xpos_torchscale(k, c.offset, true));
    auto mask = same_block(c.n_local, c.offset, xpos_block_length(c.global_len, c.w));
    auto got = logits_of(qs, ks);
    EXPECT_LT(rel_error(got.masked_select(mask), want.masked_select(mask)), 1e-12);
    // float32 inputs: tables in float64, cast; close to the float64 formula.
    auto [q32, k32] = xpos_apply(q.to(at::kFloat), k.to(at::kFloat), c.offset, c.global_len, c.w);
    EXPECT_EQ(q32.scalar_type(), at::kFloat);
    EXPECT_LT(rel_error(logits_of(q32, k32).masked_select(mask), want.masked_select(mask)), 1e-5);
  }
}

TEST(XPos, ShardsEqualWholeSequence_N96_twoRanks) {
  at::manual_seed(5);
  const std::vector<int64_t> w = {16, 32};
  auto q = at::randn({1, 96, 2, 8}), k = at::randn_like(q);
  auto [qa, ka] = xpos_apply(q, k, 0, 96, w);
  auto [q0, k0] = xpos_apply(q.narrow(1, 0, 48), k.narrow(1, 0, 48), 0, 96, w);
  auto [q1, k1] = xpos_apply(q.narrow(1, 48, 48), k.narrow(1, 48, 48), 48, 96, w);
  EXPECT_TRUE(at::equal(at::cat({q0, q1}, 1), qa));
  EXPECT_TRUE(at::equal(at::cat({k0, k1}, 1), ka));
}

TEST(XPos, FiniteAtOffset1e9_PaperSegments) {
  at::manual_seed(6);
  const std::vector<int64_t> w = {2048, 4096, 8192, 16384, 32768};
  const int64_t offset = 1000000000, global_len = int64_t(1) << 31, W = 32768;
  auto q = at::randn({1, 64, 2, 64}), k = at::randn_like(q);
  auto [qs, ks] = xpos_apply(q, k, offset, global_len, w);
  EXPECT_TRUE(at::isfinite(qs).all().item<bool>());
  EXPECT_TRUE(at::isfinite(ks).all().item<bool>());
  // The same block-local positions near the start of the sequence give the same numbers.
  auto [qn, kn] = xpos_apply(q, k, offset % W, global_len, w);
  EXPECT_TRUE(at::equal(qs, qn));
  EXPECT_TRUE(at::equal(ks, kn));
  // torchscale's global formula is not finite there, even in float64.
  auto direct = logits_of(xpos_torchscale(q.to(at::kDouble), offset, false),
                          xpos_torchscale(k.to(at::kDouble), offset, true));
  EXPECT_FALSE(at::isfinite(direct).all().item<bool>());
}

TEST(XPos, SixteenBitInputsRotateInFloat32) {
  at::manual_seed(7);
  const std::vector<int64_t> w = {16, 32};
  auto q = at::randn({1, 64, 2, 16}), k = at::randn_like(q);
  auto [qf, kf] = xpos_apply(q, k, 100, 1000, w);
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    auto [q16, k16] = xpos_apply(q.to(dtype), k.to(dtype), 100, 1000, w);
    EXPECT_EQ(q16.scalar_type(), dtype);
    // Within the rounding of the 16-bit inputs and outputs (bfloat16: 2^-8 relative).
    EXPECT_LT(rel_error(q16, qf), 1e-2) << dtype;
    EXPECT_LT(rel_error(k16, kf), 1e-2) << dtype;
  }
  // float16 cannot hold zeta^(-16384 / 512) ~ 2.5e17: rejected, not silently infinite.
  auto h = at::randn({1, 8, 1, 64}).to(at::kHalf);
  expect_error([&] { xpos_apply(h, h, 0, 1 << 20, {2048, 32768}); }, "beyond float16's range");
}

// float32 and bfloat16 (rotated in float32) hold zeta_0^(-+reach / 512) up to reach 33,878:
// beyond, keys overflowed to inf and queries underflowed, silently; now refused, with or without
// nested segments. Within it the rotation stays finite and exact to float32's rounding, also at
// the edge of the block.
TEST(XPos, ScalesBeyondFloat32RangeAreRefused) {
  at::manual_seed(9);
  auto q = at::randn({1, 8, 2, 16}, at::kDouble), k = at::randn({1, 8, 2, 16}, at::kDouble);
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    auto qd = q.to(dtype), kd = k.to(dtype);
    // Segment lengths that do not nest: c = N / 2.
    expect_error([&] { xpos_apply(qd, kd, 0, 80000, {3, 4}); }, "beyond float32's range");
    // Nested, but half the largest segment is too far.
    expect_error([&] { xpos_apply(qd, kd, 0, 1 << 20, {2048, 131072}); }, "beyond float32's range");
    expect_error([&] { xpos_range_check(131072, {131072}, dtype); },
                 "the largest at most 67757 tokens");
    // The edges: a block of 67,757 (|n - c| <= 33,878) passes, one more token does not.
    xpos_range_check(67757, {67757}, dtype);
    expect_error([&] { xpos_range_check(67758, {67758}, dtype); }, "beyond float32's range");
    // Without the causal mask q' . k' spans the whole block: 33,879 tokens at most.
    xpos_range_check(33879, {33879}, dtype, kXposScaleBase, /*causal=*/false);
    expect_error([&] { xpos_range_check(40000, {40000}, dtype, kXposScaleBase, false); },
                 "a distance of 39999 tokens (attention is not causal");
    expect_error([&] { xpos_range_check(40000, {40000}, dtype, kXposScaleBase, false); },
                 "the largest at most 33879 tokens");
  }
  // float16: the causal block reaches 5,647; beyond float32's range too, no dtype would help.
  xpos_range_check(5647, {5647}, at::kHalf);
  expect_error([&] { xpos_range_check(5648, {5648}, at::kHalf); }, "bfloat16 or float32 inputs");
  expect_error([&] { xpos_range_check(131072, {131072}, at::kHalf); },
               "the largest at most 5647 tokens");
  // float64 holds them.
  xpos_range_check(80000, {3, 4}, at::kDouble);
  // The edge that passes: W = 65536, tokens 0..7 of a block sit at n - c = -32768...
  for (int64_t offset : {int64_t(0), int64_t(65536 - 8)}) {
    auto [q64, k64] = xpos_apply(q, k, offset, 1 << 17, {1024, 65536});
    auto [q32, k32] =
        xpos_apply(q.to(at::kFloat), k.to(at::kFloat), offset, 1 << 17, {1024, 65536});
    ASSERT_TRUE(at::isfinite(q32).all().item<bool>() && at::isfinite(k32).all().item<bool>());
    // q' k'^T is what attention reads: the scales cancel to within float32's rounding.
    auto s64 = at::matmul(q64.squeeze(0).transpose(0, 1), k64.squeeze(0).permute({1, 2, 0}));
    auto s32 = at::matmul(q32.squeeze(0).transpose(0, 1), k32.squeeze(0).permute({1, 2, 0}));
    EXPECT_LT(rel_error(s32.to(at::kDouble), s64), 1e-5) << offset;
  }
}

// GPU: the rotation kernel (strided, misaligned and odd-width inputs, three dtypes), forward and
// backward, against the same maths in float64 on the CPU.
TEST(XPos, CudaKernelMatchesFloat64Maths) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(31);
  const std::vector<int64_t> w = {16, 32};
  struct Layout {
    const char* name;
    int64_t D;
  };
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const double tol = dtype == at::kFloat ? 1e-6 : dtype == at::kHalf ? 2e-3 : 1e-2;
    for (int64_t D : {64, 8, 6}) {
      for (int layout = 0; layout < 3; ++layout) {
        SCOPED_TRACE(std::string(c10::toString(dtype)) + " D " + std::to_string(D) + " layout " +
                     std::to_string(layout));
        const int64_t B = 2, N = 37, H = 3;
        auto opt = at::TensorOptions().device(at::kCUDA).dtype(dtype);
        at::Tensor q, k;
        if (layout == 0) {  // contiguous
          q = at::randn({B, N, H, D}, opt), k = at::randn({B, N, H, D}, opt);
        } else if (layout == 1) {  // q and k of one fused projection (strided over tokens)
          auto qkv = at::randn({B, N, 3, H, D}, opt).unbind(2);
          q = qkv[0], k = qkv[1];
        } else {  // rows that do not start on 16-byte boundaries
          q = at::randn({B, N, H, D + 1}, opt).narrow(3, 1, D);
          k = at::randn({B, N, H, D + 1}, opt).narrow(3, 1, D);
        }
        auto qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_();
        auto [qo, ko] = xpos_apply(qg, kg, 40, 300, w);
        auto gq = at::randn_like(qo), gk = at::randn_like(ko);
        torch::autograd::backward({qo, ko}, {gq, gk});
        auto q64 = q.cpu().to(at::kDouble).requires_grad_(),
             k64 = k.cpu().to(at::kDouble).requires_grad_();
        auto [qr, kr] = xpos_apply(q64, k64, 40, 300, w);
        torch::autograd::backward({qr, kr}, {gq.cpu().to(at::kDouble), gk.cpu().to(at::kDouble)});
        EXPECT_EQ(qo.scalar_type(), dtype);
        EXPECT_LT(rel_error(qo, qr), tol);
        EXPECT_LT(rel_error(ko, kr), tol);
        EXPECT_LT(rel_error(qg.grad(), q64.grad()), tol);
        EXPECT_LT(rel_error(kg.grad(), k64.grad()), tol);
      }
    }
  }
}

// The fused LayerNorm tests' relative tolerance for values stored in dtype t.
double ln_tolerance(at::ScalarType t) {
  return t == at::kFloat ? 1e-5 : t == at::kHalf ? 2e-3 : 1e-2;
}

// The q/k/v form of xPos (one projection's output in, its gradient written in one piece) gives
// what unbinding it and rotating q and k separately gives, outputs and the projection's gradient,
// bit for bit: on the CPU (where it is that) and on the GPU (its own autograd function) for three
// dtypes and aligned and odd head dims; v comes back as a view of qkv. The incoming gradients
// come both as separate tensors and as the slices of one (B, N, 3, H, D) tensor (as dilated
// attention's backward gives them; the GPU function then rotates them in place).
TEST(XPos, QkvFormEqualsSeparateRotation) {
  std::vector<at::Device> devices = {at::kCPU};
  if (at::hasCUDA()) devices.push_back(at::kCUDA);
  at::manual_seed(33);
  const std::vector<int64_t> w = {16, 32};
  for (auto device : devices)
    for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16})
      for (int64_t D : {64, 6}) {
        SCOPED_TRACE(device.str() + " " + c10::toString(dtype) + " D " + std::to_string(D));
        const int64_t B = 2, N = 37, H = 3;
        auto opt = at::TensorOptions().device(device).dtype(dtype);
        auto qkv = at::randn({B, N, 3, H, D}, opt);
        auto g = at::randn({B, N, 3, H, D}, opt);
        auto a = qkv.detach().requires_grad_(), b = qkv.detach().requires_grad_(),
             c = qkv.detach().requires_grad_();
        auto [qa, ka, va] = xpos_apply_qkv(a, 40, 300, w);
        EXPECT_EQ(va.data_ptr(), a.select(2, 2).data_ptr());
        torch::autograd::backward(
            {qa, ka, va}, {g.select(2, 0).clone(), g.select(2, 1).clone(), g.select(2, 2).clone()});
        auto u = b.unbind(2);
        auto [qb, kb] = xpos_apply(u[0], u[1], 40, 300, w);
        torch::autograd::backward({qb, kb, u[2]}, {g.select(2, 0), g.select(2, 1), g.select(2, 2)});
        auto [qc, kc, vc] = xpos_apply_qkv(c, 40, 300, w);
        auto gp = g.clone();  // the packed gradients (rotated in place on the GPU)
        torch::autograd::backward({qc, kc, vc},
                                  {gp.select(2, 0), gp.select(2, 1), gp.select(2, 2)});
        EXPECT_TRUE(at::equal(qa, qb));
        EXPECT_TRUE(at::equal(ka, kb));
        EXPECT_TRUE(at::equal(va, u[2]));
        ASSERT_TRUE(a.grad().defined());
        ASSERT_TRUE(c.grad().defined());
        EXPECT_TRUE(at::equal(a.grad(), b.grad()));
        EXPECT_TRUE(at::equal(c.grad(), b.grad()));
      }
  expect_error(
      [] {
        xpos_apply_qkv(at::randn({1, 4, 2, 2, 8}), 0, 4, {4});
      },
      "qkv must be (batch, seq_len, 3, heads, head_dim)");
}

// GPU: the fused LayerNorm (every input/output dtype pair the models use, widths from 4 to 5000,
// 1 to 1000 rows), output and the three gradients against float64 ATen maths on the CPU from
// the same rounded inputs; and layer_norm_apply under autocast gives autocast's dtype.
TEST(LayerNorm, FusedKernelMatchesFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(37);
  const auto tol = ln_tolerance;
  const std::pair<at::ScalarType, at::ScalarType> pairs[] = {{at::kFloat, at::kFloat},
                                                             {at::kFloat, at::kBFloat16},
                                                             {at::kBFloat16, at::kBFloat16},
                                                             {at::kHalf, at::kHalf},
                                                             {at::kFloat, at::kHalf}};
  for (auto [in, out] : pairs)
    for (int64_t C : {4, 20, 768, 1000, 3072, 4096, 5000})  // 5000: the multi-pass kernels
      for (int64_t rows : {1, 37, 1000}) {
        SCOPED_TRACE(std::string(c10::toString(in)) + " -> " + c10::toString(out) + ", C " +
                     std::to_string(C) + ", rows " + std::to_string(rows));
        auto cuda = at::TensorOptions().device(at::kCUDA);
        // Offset and scaled rows, so that the mean matters.
        auto x = (at::randn({rows, C}, cuda) * 3 + 1.5).to(in);
        auto w = at::randn({C}, cuda), b = at::randn({C}, cuda);
        auto xg = x.detach().requires_grad_(), wg = w.detach().requires_grad_(),
             bg = b.detach().requires_grad_();
        auto y = layer_norm_fused(xg, wg, bg, 1e-5, out);
        auto dy = at::randn({rows, C}, cuda).to(out);
        y.backward(dy);
        auto x64 = x.cpu().to(at::kDouble).requires_grad_(),
             w64 = w.cpu().to(at::kDouble).requires_grad_(),
             b64 = b.cpu().to(at::kDouble).requires_grad_();
        auto want = at::layer_norm(x64, {C}, w64, b64, 1e-5);
        want.backward(dy.cpu().to(at::kDouble));
        EXPECT_EQ(y.scalar_type(), out);
        EXPECT_EQ(xg.grad().scalar_type(), in);
        EXPECT_LT(rel_error(y, want), tol(out));
        EXPECT_LT(rel_error(xg.grad(), x64.grad()), std::max(tol(in), 1e-4));
        EXPECT_LT(rel_error(wg.grad(), w64.grad()), 1e-4);
        EXPECT_LT(rel_error(bg.grad(), b64.grad()), 1e-4);
      }
  {
    // A view that starts off a 16-byte boundary, and no rows at all.
    auto cuda = at::TensorOptions().device(at::kCUDA);
    auto flat = at::randn({37 * 20 + 2}, cuda).to(at::kBFloat16);
    auto x = flat.narrow(0, 2, 37 * 20).view({37, 20}).detach().requires_grad_();
    auto w = at::randn({20}, cuda).requires_grad_(), b = at::randn({20}, cuda).requires_grad_();
    auto y = layer_norm_fused(x, w, b, 1e-5, at::kBFloat16);
    EXPECT_LT(rel_error(y, at::layer_norm(x.detach().cpu().to(at::kDouble), {20},
                                          w.detach().cpu().to(at::kDouble),
                                          b.detach().cpu().to(at::kDouble), 1e-5)),
              1e-2);
    auto empty = at::randn({0, 20}, cuda).requires_grad_();
    layer_norm_fused(empty, w, b, 1e-5, at::kFloat).sum().backward();
    EXPECT_EQ(w.grad().abs().max().item<float>(), 0.0f);
    EXPECT_EQ(b.grad().abs().max().item<float>(), 0.0f);
  }
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({64}));
  ln->to(at::kCUDA);
  auto x = at::randn({2, 5, 64}, at::TensorOptions().device(at::kCUDA));
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  auto y = layer_norm_apply(ln, x);
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_LT(rel_error(y, ln(x)), 1e-2);
  EXPECT_EQ(layer_norm_apply(ln, x).scalar_type(), at::kFloat);
}

// GPU: the residual add fused into the LayerNorm, {x + res, LayerNorm(x + res)}, against
// float64 maths on the CPU from the same rounded inputs: the sum exactly (it is rounded to x's
// dtype, as x + res is), the normalised rows, and the gradients of x, res, gamma and beta with
// gradients flowing into both outputs or into the normalised rows only (the last layer's sum).
TEST(LayerNorm, FusedAddMatchesFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(43);
  const auto tol = ln_tolerance;
  const std::pair<at::ScalarType, at::ScalarType> pairs[] = {{at::kFloat, at::kBFloat16},
                                                             {at::kFloat, at::kFloat},
                                                             {at::kBFloat16, at::kBFloat16},
                                                             {at::kHalf, at::kHalf}};
  auto cuda = at::TensorOptions().device(at::kCUDA);
  for (auto [in, out] : pairs)
    for (int64_t C : {4, 20, 768, 3072, 4096})
      for (int64_t rows : {1, 37, 1000})
        for (bool sum_grad : {true, false}) {
          SCOPED_TRACE(std::string(c10::toString(in)) + " + " + c10::toString(out) + ", C " +
                       std::to_string(C) + ", rows " + std::to_string(rows) +
                       (sum_grad ? ", gradient into the sum" : ", no gradient into the sum"));
          auto x = (at::randn({rows, C}, cuda) * 3 + 1.5).to(in);
          auto res = at::randn({rows, C}, cuda).to(out);
          auto w = at::randn({C}, cuda), b = at::randn({C}, cuda);
          auto xg = x.detach().requires_grad_(), rg = res.detach().requires_grad_(),
               wg = w.detach().requires_grad_(), bg = b.detach().requires_grad_();
          auto [sum, y] = add_layer_norm_fused(xg, rg, wg, bg, 1e-5, out);
          auto dy = at::randn({rows, C}, cuda).to(out), dsum = at::randn({rows, C}, cuda).to(in);
          if (sum_grad)
            torch::autograd::backward({sum, y}, {dsum, dy});
          else
            y.backward(dy);
          auto x64 = x.cpu().to(at::kDouble).requires_grad_(),
               r64 = res.cpu().to(at::kDouble).requires_grad_(),
               w64 = w.cpu().to(at::kDouble).requires_grad_(),
               b64 = b.cpu().to(at::kDouble).requires_grad_();
          auto exact = x64 + r64;
          // The rounded sum's values with the exact sum's gradient.
          auto s64 = exact + (exact.to(in).to(at::kDouble) - exact).detach();
          auto want = at::layer_norm(s64, {C}, w64, b64, 1e-5);
          if (sum_grad)
            torch::autograd::backward({s64, want},
                                      {dsum.cpu().to(at::kDouble), dy.cpu().to(at::kDouble)});
          else
            want.backward(dy.cpu().to(at::kDouble));
          EXPECT_EQ(sum.scalar_type(), in);
          EXPECT_EQ(y.scalar_type(), out);
          EXPECT_TRUE(at::equal(sum.cpu().to(at::kDouble), s64.detach()));
          EXPECT_LT(rel_error(y, want), tol(out));
          EXPECT_EQ(xg.grad().scalar_type(), in);
          EXPECT_EQ(rg.grad().scalar_type(), out);
          EXPECT_LT(rel_error(xg.grad(), x64.grad()), std::max(tol(in), 1e-4));
          EXPECT_LT(rel_error(rg.grad(), r64.grad()), std::max(tol(out), 1e-4));
          EXPECT_LT(rel_error(wg.grad(), w64.grad()), 1e-4);
          EXPECT_LT(rel_error(bg.grad(), b64.grad()), 1e-4);
        }
  // What the kernel does not take is refused by name (and add_layer_norm_apply falls back).
  auto x = at::randn({3, 8}, cuda), w = at::randn({8}, cuda), b = at::randn({8}, cuda);
  auto half = at::randn({3, 8}, cuda).to(at::kHalf);
  EXPECT_FALSE(add_layer_norm_fused_supported(x, half, w, b, at::kBFloat16));
  try {
    add_layer_norm_fused(x, half, w, b, 1e-5, at::kBFloat16);
    ADD_FAILURE() << "a residual of the wrong dtype was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("res of x's shape in the output dtype"), std::string::npos)
        << e.what();
  }
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({8}));
  ln->to(at::kCUDA);
  auto [s, y] = add_layer_norm_apply(ln, x, half);  // fp32 + fp16: the plain ops
  EXPECT_TRUE(at::equal(s, x + half));
  EXPECT_TRUE(at::allclose(y, ln(x + half), 1e-5, 1e-6));
}

// GPU: the GELU whose gradient the LayerNorm's backward kernel takes, LayerNorm(gelu(h)),
// against float64 maths on the CPU from the same rounded inputs (gelu(h) rounded to h's dtype, as
// the GELU stores it): output and the gradients of h, gamma and beta.
TEST(LayerNorm, FusedGeluGradientMatchesFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(47);
  const auto tol = ln_tolerance;
  const std::pair<at::ScalarType, at::ScalarType> pairs[] = {{at::kBFloat16, at::kBFloat16},
                                                             {at::kFloat, at::kFloat},
                                                             {at::kHalf, at::kHalf},
                                                             {at::kFloat, at::kBFloat16}};
  auto cuda = at::TensorOptions().device(at::kCUDA);
  for (auto [in, out] : pairs)
    for (int64_t C : {4, 20, 768, 3072, 4096})
      for (int64_t rows : {1, 37, 1000}) {
        SCOPED_TRACE(std::string(c10::toString(in)) + " -> " + c10::toString(out) + ", C " +
                     std::to_string(C) + ", rows " + std::to_string(rows));
        auto h = (at::randn({rows, C}, cuda) * 2 - 0.3).to(in);
        auto w = at::randn({C}, cuda), b = at::randn({C}, cuda);
        auto hg = h.detach().requires_grad_(), wg = w.detach().requires_grad_(),
             bg = b.detach().requires_grad_();
        auto y = gelu_layer_norm_fused(hg, wg, bg, 1e-5, out);
        auto dy = at::randn({rows, C}, cuda).to(out);
        y.backward(dy);
        auto h64 = h.cpu().to(at::kDouble).requires_grad_(),
             w64 = w.cpu().to(at::kDouble).requires_grad_(),
             b64 = b.cpu().to(at::kDouble).requires_grad_();
        auto exact = at::gelu(h64);
        auto g64 = exact + (exact.to(in).to(at::kDouble) - exact).detach();
        auto want = at::layer_norm(g64, {C}, w64, b64, 1e-5);
        want.backward(dy.cpu().to(at::kDouble));
        EXPECT_EQ(y.scalar_type(), out);
        EXPECT_EQ(hg.grad().scalar_type(), in);
        EXPECT_LT(rel_error(y, want), tol(out));
        EXPECT_LT(rel_error(hg.grad(), h64.grad()), std::max(tol(in), 1e-4));
        EXPECT_LT(rel_error(wg.grad(), w64.grad()), 1e-4);
        EXPECT_LT(rel_error(bg.grad(), b64.grad()), 1e-4);
      }
  // Rows wider than the register-cached kernels: the plain GELU and LayerNorm.
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({4100}));
  ln->to(at::kCUDA);
  auto wide = at::randn({3, 4100}, cuda);
  EXPECT_FALSE(gelu_layer_norm_fused_supported(wide, ln->weight, ln->bias));
  EXPECT_TRUE(at::allclose(gelu_layer_norm_apply(ln, wide), ln(at::gelu(wide)), 1e-5, 1e-6));
}

// CPU: add_layer_norm_apply and gelu_layer_norm_apply are the plain ops there.
TEST(LayerNorm, FusedApplyOnCpuIsThePlainOps) {
  torch::nn::LayerNorm ln(torch::nn::LayerNormOptions({12}));
  auto x = at::randn({2, 5, 12}), res = at::randn({2, 5, 12});
  auto [s, y] = add_layer_norm_apply(ln, x, res);
  EXPECT_TRUE(at::equal(s, x + res));
  EXPECT_TRUE(at::equal(y, ln(x + res)));
  EXPECT_TRUE(at::equal(gelu_layer_norm_apply(ln, x), ln(at::gelu(x))));
}

TEST(XPos, BlockLengthAndBadInputs) {
  EXPECT_EQ(xpos_block_length(1 << 20, {2048, 4096, 8192, 16384, 32768}), 32768);
  EXPECT_EQ(xpos_block_length(1000, {2048, 4096}), 1000);
  EXPECT_EQ(xpos_block_length(127, {10, 20, 30}), 0);
  auto q = at::randn({1, 8, 2, 7});
  expect_error([&] { xpos_apply(q, q, 0, 8, {8}); }, "head_dim = 7 must be even");
  auto q8 = at::randn({1, 8, 2, 8});
  expect_error([&] { xpos_apply(q8, q8, 4, 8, {8}); }, "must lie inside the global sequence");
  expect_error([&] { XPos(5); }, "must be even");
}

// ---- LongNetLM -------------------------------------------------------------------------------

LongNetLMOptions tiny_lm(const std::string& variant) {
  LongNetLMOptions o;
  o.vocab_size = 11;
  o.layer.d_model = 16;
  o.layer.num_heads = 2;
  o.num_layers = 2;
  o.num_encoder_layers = variant == "encoder_decoder" ? 2 : 0;
  o.layer.dim_feedforward = 32;
  o.layer.attention.segment_lengths = {4, 8, 16};
  o.layer.attention.dilation_rates = {1, 2, 4};
  o.variant = variant;
  return o;
}

class LongNetLMVariants : public ::testing::TestWithParam<std::string> {};

std::string variant_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param == "decoder_only" ? "DecoderOnly" : "EncoderDecoder";
}

TEST_P(LongNetLMVariants, CausalNoLookahead_N37) {
  torch::NoGradGuard no_grad;
  at::manual_seed(7);
  LongNetLM lm(tiny_lm(GetParam()));
  auto tokens = at::randint(0, 11, {2, 37}, at::kLong);
  auto base = lm->forward(tokens);
  ASSERT_EQ(base.sizes(), (std::vector<int64_t>{2, 37, 11}));
  for (int64_t t : {0, 1, 7, 20, 36}) {
    auto changed = tokens.clone();
    changed.select(1, t).add_(1).remainder_(11);
    auto out = lm->forward(changed);
    EXPECT_TRUE(at::equal(out.narrow(1, 0, t), base.narrow(1, 0, t))) << "token " << t;
    EXPECT_FALSE(at::equal(out.narrow(1, t, 37 - t), base.narrow(1, t, 37 - t)))
        << "changing token " << t << " changed nothing";
  }
}

TEST_P(LongNetLMVariants, EveryParameterGetsGradient) {
  at::manual_seed(8);
  LongNetLM lm(tiny_lm(GetParam()));
  auto tokens = at::randint(0, 11, {2, 29}, at::kLong);
  auto logits = lm->forward(tokens);
  torch::nn::functional::cross_entropy(logits.reshape({-1, 11}),
                                       at::randint(0, 11, {2 * 29}, at::kLong))
      .backward();
  int64_t count = 0;
  for (const auto& p : lm->named_parameters()) {
    ++count;
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  EXPECT_GT(count, 20);
}

// Activation checkpointing recomputes each layer in the backward (all of them, or the first
// checkpoint_layers): same loss, same gradients, also with dropout (the recompute replays the
// forward's RNG).
TEST(LongNetLM, ActivationCheckpointingGivesSameGradients) {
  for (int64_t checkpointed : {0, 1, 2})
    for (double dropout : {0.0, 0.2}) {
      SCOPED_TRACE("checkpoint_layers " + std::to_string(checkpointed));
      at::manual_seed(21);
      auto o = tiny_lm("decoder_only");
      o.num_layers = 3;
      o.layer.dropout = dropout;
      LongNetLM plain(o);
      o.activation_checkpointing = true;
      o.checkpoint_layers = checkpointed;
      LongNetLM ckpt(o);
      {
        torch::NoGradGuard no_grad;
        for (size_t i = 0; i < plain->parameters().size(); ++i)
          ckpt->parameters()[i].copy_(plain->parameters()[i]);
      }
      auto tokens = at::randint(0, 11, {2, 29}, at::kLong);
      auto targets = at::randint(0, 11, {2 * 29}, at::kLong);
      std::vector<double> losses;
      for (auto* lm : {&plain, &ckpt}) {
        at::manual_seed(5);  // the same dropout masks in both runs
        auto loss =
            torch::nn::functional::cross_entropy((*lm)->forward(tokens).reshape({-1, 11}), targets);
        loss.backward();
        losses.push_back(loss.item<double>());
      }
      EXPECT_EQ(losses[0], losses[1]) << "dropout " << dropout;
      auto pp = plain->named_parameters(), cp = ckpt->named_parameters();
      for (const auto& p : pp) {
        const auto& g = p.value().grad();
        const auto& h = cp[p.key()].grad();
        ASSERT_TRUE(h.defined()) << p.key();
        EXPECT_TRUE(at::allclose(g, h, 1e-5, 1e-7)) << p.key() << " dropout " << dropout;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Variants, LongNetLMVariants,
                         ::testing::Values(std::string("decoder_only"),
                                           std::string("encoder_decoder")),
                         variant_name);

// GPU, bfloat16 autocast as the trainer runs it (fused q/k/v projection and its xPos function,
// fused add/GELU + LayerNorm kernels, SDPA problems): logits and every parameter's gradient against
// the same model in float64 on the CPU, for both variants and activations, with biases drawn away
// from their zero init. Tolerance rule (STYLE.md): at most about twice the error of the naive
// low-precision run, the whole model in bfloat16 without autocast.
TEST(LongNetLM, GpuBfloat16AutocastWithinTwiceNaiveError) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  for (std::string variant : {"decoder_only", "encoder_decoder"})
    for (std::string activation : {"relu", "gelu"}) {
      SCOPED_TRACE(variant + ", " + activation);
      at::manual_seed(41);
      auto o = tiny_lm(variant);
      o.layer.d_model = 64;
      o.layer.num_heads = 4;
      o.layer.dim_feedforward = 96;
      o.layer.attention.segment_lengths = {32, 64};
      o.layer.attention.dilation_rates = {1, 2};
      o.vocab_size = 50;
      o.layer.activation = activation;
      LongNetLM gpu(o), naive(o), ref(o);
      {
        torch::NoGradGuard no_grad;
        for (auto& p : gpu->named_parameters())
          if (p.key().size() >= 4 && p.key().substr(p.key().size() - 4) == "bias")
            p.value().normal_(0.0, 0.1);
        for (size_t i = 0; i < gpu->parameters().size(); ++i) {
          ref->parameters()[i].copy_(gpu->parameters()[i]);
          naive->parameters()[i].copy_(gpu->parameters()[i]);
        }
      }
      gpu->to(at::kCUDA);
      naive->to(at::kCUDA, at::kBFloat16);
      ref->to(at::kDouble);
      auto tokens = at::randint(0, 50, {2, 100}, at::kLong);
      auto targets = at::randint(0, 50, {2 * 100}, at::kLong);
      auto loss_of = [&](const at::Tensor& logits, const at::Tensor& t) {
        auto loss = torch::nn::functional::cross_entropy(
            logits.reshape({-1, 50}).to(at::kFloat).to(t.device()), t);
        loss.backward();
      };
      at::Tensor logits;
      {
        at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        logits = gpu->forward(tokens.cuda());
        at::autocast::set_autocast_enabled(at::kCUDA, false);
        at::autocast::clear_cache();
      }
      loss_of(logits, targets.cuda());
      auto naive_logits = naive->forward(tokens.cuda());
      loss_of(naive_logits, targets.cuda());
      auto want = ref->forward(tokens);
      torch::nn::functional::cross_entropy(want.reshape({-1, 50}), targets).backward();
      const double e = rel_error(logits, want), e_naive = rel_error(naive_logits, want);
      EXPECT_LE(e, 2.0 * e_naive) << "logits: error " << e << ", naive " << e_naive;
      // The naive run goes through the same fused kernels, so a gross error there would hide
      // behind the rule above: bound the error outright too (bfloat16 gives about 1e-2).
      EXPECT_LT(e, 0.05) << "logits";
      auto gp = gpu->named_parameters(), np = naive->named_parameters(),
           rp = ref->named_parameters();
      for (const auto& p : rp) {
        const auto& g = gp[p.key()].grad();
        ASSERT_TRUE(g.defined()) << p.key();
        EXPECT_EQ(g.scalar_type(), at::kFloat) << p.key();
        const double eg = rel_error(g, p.value().grad()),
                     eg_naive = rel_error(np[p.key()].grad(), p.value().grad());
        EXPECT_LE(eg, 2.0 * eg_naive) << p.key() << ": error " << eg << ", naive " << eg_naive;
        EXPECT_LT(eg, 0.25) << p.key();
      }
    }
}

TEST(LongNetLM, BaseDecoderOnlyParameterCount_768x12_vocab256) {
  LongNetLMOptions o;  // the paper's base: 768, 12 layers, 12 heads, FFN 3072, bytes
  ASSERT_EQ(o.variant, "decoder_only");
  LongNetLM lm(o);
  const int64_t d = 768, F = 3072, L = 12, V = 256;
  // Per layer: norm1 (2d); q, k, v, out projections (4 (d^2 + d)); attention sub-LN (2d);
  // FFN norm (2d); linear1 (dF + F); FFN sub-LN (2F); linear2 (Fd + d).
  const int64_t per_layer =
      4 * (d * d + d) + 2 * d + 2 * d + 2 * d + (d * F + F) + 2 * F + (F * d + d);
  // Embedding (Vd), final LayerNorm (2d), output projection (dV + V).
  const int64_t expected = V * d + L * per_layer + 2 * d + (d * V + V);
  int64_t got = 0;
  for (const auto& p : lm->parameters()) got += p.numel();
  std::cout << "LongNetLM base decoder-only: " << got << " parameters (closed form " << expected
            << " = 256*768 + 12*" << per_layer << " + 2*768 + 768*256 + 256)" << std::endl;
  EXPECT_EQ(got, expected);
  EXPECT_EQ(expected, 85541632);
}

TEST(LongNet, MagnetoGammasAndShapes) {
  EXPECT_NEAR(magneto_encoder_gamma(12, 12), std::sqrt(std::log(36.0) * std::log(24.0) / 3.0),
              1e-15);
  EXPECT_NEAR(magneto_decoder_gamma(12), std::sqrt(std::log(36.0)), 1e-15);
  LongNetOptions o;
  EXPECT_EQ(o.layer.d_model, 768);
  EXPECT_EQ(o.layer.attention.segment_lengths,
            (std::vector<int64_t>{2048, 4096, 8192, 16384, 32768}));
  EXPECT_EQ(o.layer.attention.dilation_rates, (std::vector<int64_t>{1, 2, 4, 6, 12}));
  o.layer.d_model = 16;
  o.layer.num_heads = 2;
  o.num_encoder_layers = 1;
  o.num_decoder_layers = 2;
  o.layer.dim_feedforward = 24;
  o.layer.attention.segment_lengths = {4, 8};
  o.layer.attention.dilation_rates = {1, 2};
  o.layer.activation = "relu";
  at::manual_seed(9);
  LongNet net(o);
  auto x = at::randn({2, 19, 16});
  EXPECT_EQ(net->forward(x).sizes(), x.sizes());
  EXPECT_EQ(net->encoder.size(), 1u);
  EXPECT_EQ(net->decoder.size(), 2u);
}

// ---- parameter files -------------------------------------------------------------------------

TEST(ParameterIo, SaveLoadGivesIdenticalOutputs) {
  torch::NoGradGuard no_grad;
  const std::string dir = temp_dir(), path = dir + "/model.pt";
  at::manual_seed(10);
  LongNetLM a(tiny_lm("encoder_decoder"));
  parameters_save(*a, path);
  at::manual_seed(11);
  LongNetLM b(tiny_lm("encoder_decoder"));
  auto tokens = at::randint(0, 11, {1, 23}, at::kLong);
  EXPECT_FALSE(at::equal(a->forward(tokens), b->forward(tokens)));
  parameters_load(*b, path);
  EXPECT_TRUE(at::equal(a->forward(tokens), b->forward(tokens)));
  // Atomic write: only the target is left, and saving again replaces it.
  parameters_save(*b, path);
  EXPECT_EQ(dir_list(dir), std::vector<std::string>{"model.pt"});
  dir_remove(dir);
}

TEST(ParameterIo, LoadMismatchNamesParameterAndLeavesModelUntouched) {
  torch::NoGradGuard no_grad;
  const std::string dir = temp_dir(), path = dir + "/model.pt";
  at::manual_seed(12);
  LongNetLM a(tiny_lm("decoder_only"));
  parameters_save(*a, path);

  auto wider = tiny_lm("decoder_only");
  wider.layer.dim_feedforward = 48;
  LongNetLM b(wider);
  auto before = b->layers[0]->as<DecoderLayerImpl>()->linear1->weight.clone();
  expect_error([&] { parameters_load(*b, path); },
               "parameter 'layers.0.linear1.weight' has shape [48, 16] in the model but [32, 16] "
               "in " +
                   path);
  EXPECT_TRUE(at::equal(b->layers[0]->as<DecoderLayerImpl>()->linear1->weight, before));
  // norm (the final LayerNorm) is untouched too: nothing is copied before all checks pass.
  EXPECT_TRUE(at::equal(b->norm->weight, at::ones_like(b->norm->weight)));

  LongNetLM c(tiny_lm("encoder_decoder"));
  expect_error([&] { parameters_load(*c, path); },
               "lacks 102 parameter(s) of the model: 'long_net.encoder_layers.0.norm1.weight'");
  auto deeper = tiny_lm("decoder_only");
  deeper.num_layers = 1;
  LongNetLM d(deeper);
  expect_error([&] { parameters_load(*d, path); }, "the model does not have: 'layers.1.");
  expect_error([&] { parameters_load(*a, dir + "/absent.pt"); },
               "parameters file '" + dir + "/absent.pt' does not exist");
  {  // integer tensors of the right shapes are not parameters (copy_ would cast them)
    c10::impl::GenericDict ints(c10::StringType::get(), c10::TensorType::get());
    for (const auto& p : a->named_parameters())
      ints.insert(p.key(), at::zeros(p.value().sizes(), at::kLong));
    const auto bytes = torch_save_bytes(ints);
    std::ofstream(dir + "/ints.pt", std::ios::binary).write(bytes.data(), bytes.size());
    expect_error([&] { parameters_load(*a, dir + "/ints.pt"); }, "is Long in " + dir);
  }
  // Not a zip archive; a zip whose directory points past its end (refused before LibTorch's
  // reader, which does not bound its reads, sees it).
  {
    std::ofstream(dir + "/text.pt") << "d_model: 64\n";
    expect_error([&] { parameters_load(*a, dir + "/text.pt"); }, "no zip end record");
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t end = bytes.size() - 22;  // torch.save writes no zip comment
    put_u32(reinterpret_cast<unsigned char*>(&bytes[end + 16]), uint32_t(bytes.size()));
    std::ofstream(dir + "/broken.pt", std::ios::binary) << bytes;
    expect_error([&] { parameters_load(*a, dir + "/broken.pt"); },
                 "its zip layout is broken: the central directory lies outside the file");
  }
  dir_remove(dir);
}

int python_run(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Python's torch.load reads our file (names, shapes, values), and torch.save's file loads back.
TEST(ParameterIo, PythonTorchLoadRoundTrip) {
  const std::string python = LONGNET_TEST_PYTHON;
  if (python.empty()) GTEST_SKIP() << "no LONGNET_PYTHON configured";
  torch::NoGradGuard no_grad;
  const std::string dir = temp_dir(), path = dir + "/model.pt";
  at::manual_seed(13);
  LongNetLM lm(tiny_lm("decoder_only"));
  parameters_save(*lm, path);
  {
    std::ofstream script(dir + "/check.py");
    script << "import sys\n"
              "try:\n"
              "    import torch\n"
              "except ImportError:\n"
              "    sys.exit(77)\n"
              "state = torch.load(sys.argv[1])\n"
              "with open(sys.argv[2], 'w') as f:\n"
              "    for k, v in state.items():\n"
              "        shape = 'x'.join(str(s) for s in v.shape)\n"
              "        f.write(f'{k} {shape} {v.double().sum().item():.17g}\\n')\n"
              "# A plain dict: LibTorch's unpickler cannot read an OrderedDict (state_dict()).\n"
              "torch.save({k: 2 * v for k, v in state.items()}, sys.argv[3])\n"
              "import collections\n"
              "torch.save(collections.OrderedDict(state), sys.argv[3] + '.ordered')\n";
  }
  int rc = python_run(python + " " + dir + "/check.py " + path + " " + dir + "/sums.txt " + dir +
                      "/doubled.pt");
  if (rc == 77) {
    dir_remove(dir);
    GTEST_SKIP() << python << " has no torch";
  }
  ASSERT_EQ(rc, 0) << python << " failed to read " << path;

  std::map<std::string, std::pair<std::string, double>> seen;
  std::ifstream sums(dir + "/sums.txt");
  std::string name, shape;
  double sum;
  while (sums >> name >> shape >> sum) seen[name] = {shape, sum};
  auto params = lm->named_parameters();
  EXPECT_EQ(seen.size(), params.size());
  for (const auto& p : params) {
    ASSERT_TRUE(seen.count(p.key())) << p.key() << " missing in Python";
    std::string want_shape;
    for (int64_t s : p.value().sizes())
      want_shape += (want_shape.empty() ? "" : "x") + std::to_string(s);
    EXPECT_EQ(seen[p.key()].first, want_shape) << p.key();
    double want = p.value().to(at::kDouble).sum().item<double>();
    EXPECT_NEAR(seen[p.key()].second, want, 1e-9 * (1 + std::abs(want))) << p.key();
  }

  LongNetLM back(tiny_lm("decoder_only"));
  parameters_load(*back, dir + "/doubled.pt");
  auto theirs = back->named_parameters();
  for (const auto& p : params) EXPECT_TRUE(at::equal(theirs[p.key()], 2 * p.value())) << p.key();
  // The OrderedDict that torch.save(model.state_dict()) writes: named, with what to do instead,
  // and none of LibTorch's internal-assertion text.
  try {
    parameters_load(*back, dir + "/doubled.pt.ordered");
    ADD_FAILURE() << "an OrderedDict file loaded";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("holds an OrderedDict"), std::string::npos) << msg;
    EXPECT_NE(msg.find("save dict(model.state_dict()) instead"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("INTERNAL ASSERT"), std::string::npos) << msg;
  }
  dir_remove(dir);
}

// ---- bad inputs ------------------------------------------------------------------------------

TEST(Models, BadInputsGiveClearErrors) {
  const std::vector<int64_t> w = {8}, r = {1};
  expect_error([&] { MultiheadDilatedAttention(mhda_options(30, 4, w, r)); },
               "num_heads: 4 does not divide d_model = 30");
  expect_error([&] { MultiheadDilatedAttention(mhda_options(48, 4, w, r)); },
               "the head dim d_model / num_heads = 48 / 4 = 12 is not a multiple of 8 (the "
               "attention kernels need it); num_heads in {");
  expect_error([&] { MultiheadDilatedAttention(mhda_options(48, 4, w, r)); }, "6 (head dim 8)");
  expect_error(
      [&] {
        MultiheadDilatedAttention(mhda_options(16, 2, {8, 16}, r));
      },
      "must have the same length");
  auto o = tiny_lm("decoder_only");
  o.layer.activation = "swish";
  expect_error([&] { LongNetLM{o}; }, "activation: 'swish' is not one of gelu, relu");
  o = tiny_lm("decoder_only");
  o.variant = "decoder";
  expect_error([&] { LongNetLM{o}; },
               "variant: 'decoder' is not one of decoder_only, encoder_decoder");
  LongNetLM lm(tiny_lm("decoder_only"));
  expect_error([&] { lm->forward(at::zeros({1, 8})); }, "tokens must be (batch, seq_len) int64");
  MultiheadDilatedAttention m(mhda_options(16, 2, w, r));
  expect_error(
      [&] {
        m->forward(at::randn({1, 8, 16}), at::randn({1, 4, 16}), at::randn({1, 8, 16}));
      },
      "same shape");
}

}  // namespace
}  // namespace longnet
