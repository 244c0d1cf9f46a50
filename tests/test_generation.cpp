// Generation (core/dilated_cache.h, core/incremental_lm.h): the cache's attention rows against
// the brute-force definition, teacher-forced incremental logits against the full forward (both
// variants, prompts mid-segment and on boundaries, chunked prefills, r not dividing w, sequences
// shorter than the longest segment, several heads per offset class, batches of different prompt
// lengths), constant memory from 32K to 1M tokens, the CUDA decode kernels, sampling; and
// loading a model from its files and the evaluation across context lengths (train/).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "longnet/core/autocast_scope.h"
#include "longnet/core/dilated_cache.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/core/parameter_io.h"
#include "longnet/core/sampling.h"
#include "longnet/core/small_linear.h"
#include "longnet/core/xpos.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/tests/dilated_reference.h"
#include "longnet/tests/test_util.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/context_eval.h"
#include "longnet/train/model_export.h"
#include "longnet/train/model_load.h"

namespace longnet {
namespace {

using testing::expect_error;
using testing::expect_throw;
using testing::rel_error;

// ---- the cache alone ----------------------------------------------------------------------------

struct CacheCase {
  std::vector<int64_t> w, r;
  int64_t H, N;
  std::vector<int64_t> prompts;  // per sequence; each then steps to its prompt + (N - max prompt)
  int64_t D = 16;                // head dim
};

// Worst relative error (per row and head) of the cache's rows against the float64 definition.
// On CUDA: the one-pass kernel, the three-pass kernels (one_pass false) or the ATen path.
double cache_error(const CacheCase& c, at::Device device, at::ScalarType dtype,
                   bool reference_path = false, bool one_pass = true) {
  const int64_t B = int64_t(c.prompts.size()), D = c.D;
  const int64_t P = *std::max_element(c.prompts.begin(), c.prompts.end());
  const int64_t steps = c.N - P, total = P + steps;
  at::manual_seed(11);
  auto q = at::randn({B, total, c.H, D}, at::kDouble), k = at::randn_like(q), v = at::randn_like(q);
  const double scale = 0.37;
  auto want = testing::reference_dilated_attention(q, k, v, c.w, c.r, true, scale);
  DilatedAttentionOptions o;
  o.segment_lengths = c.w;
  o.dilation_rates = c.r;
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  DilatedKVCache cache(o, B, c.H, D, opts);
  cache.set_one_pass(one_pass);
  cache.set_early_launch(true);  // (each step follows the at::stack of its inputs)
  auto qd = q.to(opts), kd = k.to(opts), vd = v.to(opts);
  // The prompt in chunks of one block (the last shorter).
  for (int64_t c0 = 0; c0 < P; c0 += cache.block()) {
    const int64_t n = std::min(cache.block(), P - c0);
    cache.fill(kd.narrow(1, c0, n), vd.narrow(1, c0, n), c0, c.prompts);
  }
  auto pos = at::tensor(c.prompts, at::kLong).to(device);
  double worst = 0;
  const int64_t min_prompt = *std::min_element(c.prompts.begin(), c.prompts.end());
  for (int64_t s = 0; s < total - min_prompt; ++s) {
    auto idx = pos.cpu();
    std::vector<at::Tensor> qs, ks, vs, refs;
    bool any = false;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t p = std::min(idx[b].item<int64_t>(), total - 1);
      any |= idx[b].item<int64_t>() < total;
      qs.push_back(qd[b][p]), ks.push_back(kd[b][p]), vs.push_back(vd[b][p]);
      refs.push_back(want[b][p]);
    }
    if (!any) break;
    auto out = reference_path
                   ? cache.step_reference(at::stack(qs), at::stack(ks), at::stack(vs), pos, scale)
                   : cache.step(at::stack(qs), at::stack(ks), at::stack(vs), pos, scale);
    for (int64_t b = 0; b < B; ++b) {
      if (idx[b].item<int64_t>() >= total) continue;
      for (int64_t h = 0; h < c.H; ++h) {
        auto r = refs[b][h], o_ = out[b][h];
        const double den = r.norm().item<double>();
        // Rows no branch selects are exactly 0 on both sides.
        const double e =
            den == 0 ? o_.to(at::kDouble).cpu().norm().item<double>() : rel_error(o_, r);
        worst = std::max(worst, e);
      }
    }
    pos += 1;
  }
  std::cout << "  worst relative error of the rows (" << dtype << "): " << worst << "\n";
  return worst;
}

// The worst row error of the definition computed naively in bfloat16 on the GPU (same inputs as
// cache_error), against float64.
double naive_bf16_error(const CacheCase& c) {
  const int64_t B = int64_t(c.prompts.size()), D = c.D;
  at::manual_seed(11);
  auto q = at::randn({B, c.N, c.H, D}, at::kDouble), k = at::randn_like(q), v = at::randn_like(q);
  auto want = testing::reference_dilated_attention(q, k, v, c.w, c.r, true, 0.37);
  auto bf = [](const at::Tensor& x) { return x.to(at::kCUDA, at::kBFloat16); };
  auto got = testing::reference_dilated_attention(bf(q), bf(k), bf(v), c.w, c.r, true, 0.37)
                 .to(at::kDouble)
                 .cpu();
  auto den = want.norm(2, -1);
  auto err = (got - want).norm(2, -1) / den.clamp_min(1e-300);
  return at::where(den > 0, err, at::zeros_like(err)).max().item<double>();
}

TEST(DilatedKVCache, RowsMatchDefinition_r6_r12_crossingBlocks) {
  // r = 6 does not divide 16, r = 12 does not divide 64; 8 heads: two per class of r = 6.
  CacheCase c{{8, 16, 64}, {1, 6, 12}, 8, 64 * 3 + 17, {70}};
  EXPECT_LT(cache_error(c, at::kCPU, at::kFloat), 1e-5);
}

TEST(DilatedKVCache, RowsMatchDefinition_unselectedRowsAreZero) {
  // w = {8, 16}, r = {2, 4}: e.g. head 0 at odd offsets is selected by no branch.
  CacheCase c{{8, 16}, {2, 4}, 4, 50, {5}};
  EXPECT_LT(cache_error(c, at::kCPU, at::kFloat), 1e-5);
}

TEST(DilatedKVCache, RowsMatchDefinition_batchOfPromptsOnAndOffBoundaries) {
  CacheCase c{{8, 16, 64}, {1, 6, 12}, 8, 200, {64, 128, 1, 77}};
  EXPECT_LT(cache_error(c, at::kCPU, at::kFloat), 1e-5);
}

TEST(DilatedKVCache, RowsMatchDefinition_shorterThanLongestSegment) {
  CacheCase c{{8, 16, 64}, {1, 6, 12}, 8, 40, {13}};
  EXPECT_LT(cache_error(c, at::kCPU, at::kFloat), 1e-5);
  EXPECT_LT(cache_error(c, at::kCPU, at::kDouble), 1e-12);
}

TEST(DilatedKVCache, RefusesNonNestedSegments) {
  DilatedAttentionOptions o;
  o.segment_lengths = {6, 10};
  o.dilation_rates = {1, 2};
  expect_error([&] { DilatedKVCache(o, 1, 2, 8, at::TensorOptions()); },
               "does not divide the largest segment length 10");
}

TEST(DilatedKVCache, CudaKernelMatchesDefinition) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  for (bool one_pass : {true, false}) {
    for (int64_t H : {8, 12}) {
      CacheCase c{{8, 16, 64}, {1, 6, 12}, H, 64 * 3 + 17, {70, 64, 1}};
      const double f32 = cache_error(c, at::kCUDA, at::kFloat, false, one_pass);
      EXPECT_LT(f32, 1e-5) << "H " << H << " one pass " << one_pass;
      // bfloat16: within twice the error of the same maths done naively in bfloat16 (the
      // brute-force definition evaluated in bfloat16), worst row against worst row.
      const double bf16 = cache_error(c, at::kCUDA, at::kBFloat16, false, one_pass);
      const double aten = cache_error(c, at::kCUDA, at::kBFloat16, /*reference_path=*/true);
      const double naive = naive_bf16_error(c);
      EXPECT_LT(bf16, 2 * naive) << "H " << H << " one pass " << one_pass << " naive " << naive
                                 << " ATen path " << aten;
    }
    // Rows no branch selects: exactly 0.
    CacheCase unselected{{8, 16}, {2, 4}, 4, 50, {5, 9}};
    EXPECT_LT(cache_error(unselected, at::kCUDA, at::kFloat, false, one_pass), 1e-5)
        << "one pass " << one_pass;
  }
}

TEST(DilatedKVCache, CudaKernelMatchesDefinition_manyChunksEveryHeadDim) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  for (bool one_pass : {true, false}) {
    // Up to 1,024 rows in a branch: 16 chunks of 64 rows, which the combine kernel's warps
    // merge several each; prompts below, on and past the block boundary; every head dim the
    // kernel has.
    for (int64_t D : {16, 32, 64, 128, 256}) {
      CacheCase c{{128, 1024}, {1, 3}, 6, 1100, {1000, 1024, 300}, D};
      EXPECT_LT(cache_error(c, at::kCUDA, at::kFloat, false, one_pass), 1e-5)
          << "D " << D << " one pass " << one_pass;
      const double bf16 = cache_error(c, at::kCUDA, at::kBFloat16, false, one_pass);
      const double naive = naive_bf16_error(c);
      EXPECT_LT(bf16, 2 * naive) << "D " << D << " one pass " << one_pass << " naive " << naive;
    }
    // B H >= 256: chunks of 256 rows.
    CacheCase wide{{64, 768}, {1, 2}, 128, 800, {700, 5}, 16};
    EXPECT_LT(cache_error(wide, at::kCUDA, at::kFloat, false, one_pass), 1e-5)
        << "one pass " << one_pass;
    // More partials per row than the one-pass kernel's block has threads: 8,192 slots of 64
    // rows (128 chunks) plus the short branch's one, across the block boundary at 8,192.
    CacheCase long_branch{{64, 8192}, {1, 1}, 1, 8192 + 40, {8180, 8100}, 16};
    EXPECT_LT(cache_error(long_branch, at::kCUDA, at::kFloat, false, one_pass), 1e-5)
        << "one pass " << one_pass;
    // Four branches of up to 4 chunks each, every subset of them selecting a row as the
    // position moves (the one-pass kernel merges each branch's chunks, then the branches), across
    // the block boundary at 2,048, and a batch at two positions.
    CacheCase branches{{256, 512, 1024, 2048}, {1, 2, 4, 8}, 8, 2048 + 90, {2000, 1800}, 64};
    EXPECT_LT(cache_error(branches, at::kCUDA, at::kFloat, false, one_pass), 1e-5)
        << "one pass " << one_pass;
    const double bf16 = cache_error(branches, at::kCUDA, at::kBFloat16, false, one_pass);
    EXPECT_LT(bf16, 2 * naive_bf16_error(branches)) << "one pass " << one_pass;
  }
}

// ---- xPos at explicit positions --------------------------------------------------------------

// Rotating tokens at explicit positions gives the forward's rotation (block mode) bit for bit.
TEST(XposAt, MatchesTheForwardsRotation) {
  at::manual_seed(14);
  const std::vector<int64_t> w = {16, 64};
  const int64_t offset = 128 + 5, n = 70, H = 3, D = 8;
  auto q = at::randn({2, n, H, D}), k = at::randn_like(q);
  auto [q_fwd, k_fwd] = xpos_apply(q, k, offset, /*global_len=*/4096, w);
  auto pos = at::arange(offset, offset + n, at::kLong).expand({2, n}).contiguous();
  auto t = xpos_tables_at(pos, 64, D, at::kFloat);
  EXPECT_TRUE(at::equal(xpos_rotate_at(q, t, false), q_fwd));
  EXPECT_TRUE(at::equal(xpos_rotate_at(k, t, true), k_fwd));
}

TEST(XposAt, CudaTablesMatchTheCpuOnes) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  auto pos =
      at::tensor(std::vector<int64_t>{0, 1, 16383, 16384, 32767, 32768, 1048576 + 77}, at::kLong);
  auto cpu = xpos_tables_at(pos, 32768, 64, at::kFloat);
  auto gpu = xpos_tables_at(pos.cuda(), 32768, 64, at::kFloat);
  EXPECT_LT(rel_error(gpu.cos_q, cpu.cos_q), 1e-7);
  EXPECT_LT(rel_error(gpu.sin_q, cpu.sin_q), 1e-7);
  EXPECT_LT(rel_error(gpu.cos_k, cpu.cos_k), 1e-7);
  EXPECT_LT(rel_error(gpu.sin_k, cpu.sin_k), 1e-7);
}

// ---- the model ----------------------------------------------------------------------------------

LongNetLMOptions tiny_lm(const std::string& variant, std::vector<int64_t> w, std::vector<int64_t> r,
                         int64_t heads = 8) {
  LongNetLMOptions o;
  o.variant = variant;
  o.vocab_size = 50;
  o.num_layers = 2;
  o.num_encoder_layers = variant == "encoder_decoder" ? 1 : 0;
  o.layer.d_model = heads * 8;
  o.layer.num_heads = heads;
  o.layer.dim_feedforward = 48;
  o.layer.attention.segment_lengths = std::move(w);
  o.layer.attention.dilation_rates = std::move(r);
  return o;
}

// The largest per-row relative error of a (..., V) against b, over every row.
double worst_row_error(const at::Tensor& a, const at::Tensor& b) {
  auto bd = b.to(at::kDouble).cpu(), ad = a.to(at::kDouble).cpu();
  return ((ad - bd).norm(2, -1) / bd.norm(2, -1)).max().item<double>();
}

struct Teacher {
  double prefill_error = 0, step_error = 0;  // worst per-position relative error of the logits
  bool fused = false;                        // whether the steps ran the fused small linears
};

// Teacher-forced: sequence b gets prompt tokens [0, prompts[b]) then `steps` tokens one by one;
// every logit row is compared with the full forward's at the same position.
Teacher teacher_forced(LongNetLM model, const std::vector<int64_t>& prompts, int64_t steps,
                       int64_t chunk, at::Device device = at::kCPU,
                       at::ScalarType dtype = at::kFloat, LongNetLM reference = nullptr,
                       bool fused_step = true) {
  model->to(device, dtype);
  model->eval();
  const int64_t B = int64_t(prompts.size());
  const int64_t P = *std::max_element(prompts.begin(), prompts.end());
  const int64_t N = P + steps;
  at::manual_seed(5);
  auto tokens = at::randint(model->options().vocab_size, {B, N}, at::kLong);
  at::Tensor full;
  {
    at::NoGradGuard no_grad;
    auto ref = reference ? reference : model;
    full = ref->forward(tokens.to(ref->out->weight.device())).to(at::kDouble).cpu();
  }
  auto row_error = [&](const at::Tensor& got, int64_t b, int64_t p) {
    return rel_error(got, full[b][p]);
  };
  IncrementalOptions io;
  io.prefill_chunk = chunk;
  io.cuda_graph = device.is_cuda();
  io.fused_step = fused_step;
  io.fused_step_max_batch = kSmallLinearMaxRows;  // (the fused step at every batch it takes)
  IncrementalLM inc(model, B, io);
  at::Tensor all;
  auto last = inc.prefill(tokens.narrow(1, 0, P), prompts, &all);
  Teacher t;
  t.fused = inc.fused_step();
  for (int64_t b = 0; b < B; ++b) {
    t.prefill_error = std::max(t.prefill_error, row_error(last[b], b, prompts[b] - 1));
    for (int64_t p = 0; p < prompts[b]; ++p)
      t.prefill_error = std::max(t.prefill_error, row_error(all[b][p], b, p));
  }
  const int64_t min_prompt = *std::min_element(prompts.begin(), prompts.end());
  for (int64_t s = 0; s < N - min_prompt; ++s) {
    auto pos = inc.positions().cpu().clone();  // (a CPU tensor's .cpu() is itself)
    auto next = at::empty({B}, at::kLong);
    for (int64_t b = 0; b < B; ++b) next[b] = tokens[b][std::min(pos[b].item<int64_t>(), N - 1)];
    auto logits = inc.step(next.to(device)).to(at::kDouble).cpu();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t p = pos[b].item<int64_t>();
      if (p < N) t.step_error = std::max(t.step_error, row_error(logits[b], b, p));
    }
  }
  std::cout << "  worst relative error of the logits: prefill " << t.prefill_error << ", step "
            << t.step_error << (t.fused ? " (fused step)" : "") << "\n";
  return t;
}

TEST(IncrementalLM, DecoderOnlyMatchesForward_crossingBlocks_r6_r12_midSegmentPrompt) {
  at::manual_seed(1);
  LongNetLM m(tiny_lm("decoder_only", {8, 16, 64}, {1, 6, 12}));
  auto t = teacher_forced(m, {70}, 64 * 2 + 9, /*chunk=*/64);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, DecoderOnlyMatchesForward_promptsOnBoundaries_batchOfLengths) {
  at::manual_seed(2);
  LongNetLM m(tiny_lm("decoder_only", {8, 16, 64}, {1, 6, 12}));
  auto t = teacher_forced(m, {64, 128, 37}, 90, /*chunk=*/64);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, DecoderOnlyMatchesForward_chunkedPrefill) {
  at::manual_seed(3);
  LongNetLM m(tiny_lm("decoder_only", {8, 16, 64}, {1, 6, 12}));
  auto t = teacher_forced(m, {150, 129}, 40, /*chunk=*/64);  // 3 chunks
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, DecoderOnlyMatchesForward_shorterThanLongestSegment) {
  // N = 40 < w_max = 64: the full forward's xPos reference differs from generation's.
  at::manual_seed(4);
  LongNetLM m(tiny_lm("decoder_only", {8, 16, 64}, {1, 6, 12}));
  auto t = teacher_forced(m, {13, 1}, 27, 64);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, DecoderOnlyMatchesForward_segmentsOfOneToken) {
  // A largest segment of 1 (every token attends to itself; xPos blocks of one position), and
  // one of 1 beside longer ones.
  at::manual_seed(6);
  LongNetLM one(tiny_lm("decoder_only", {1}, {1}));
  auto t = teacher_forced(one, {5, 2}, 7, /*chunk=*/4);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
  LongNetLM mixed(tiny_lm("decoder_only", {1, 4}, {1, 2}));
  t = teacher_forced(mixed, {6, 3}, 9, /*chunk=*/4);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, DecoderOnlyMatchesForward_headsPerClass_unselectedRows) {
  at::manual_seed(6);
  LongNetLM m(tiny_lm("decoder_only", {8, 16}, {2, 4}, /*heads=*/4));
  auto t = teacher_forced(m, {5, 16}, 45, 16);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, EncoderDecoderMatchesForward) {
  at::manual_seed(7);
  LongNetLM m(tiny_lm("encoder_decoder", {8, 16, 64}, {1, 6, 12}));
  auto t = teacher_forced(m, {70, 33}, 80, 64);
  EXPECT_LT(t.prefill_error, 1e-4);
  EXPECT_LT(t.step_error, 1e-4);
  // What generate checks before allocating: the caches of every attention (encoder, decoder
  // self and cross), as allocated.
  IncrementalLM inc(m, 3);
  EXPECT_EQ(IncrementalLM::cache_bytes_for(m->options(), 3, 4), inc.cache_bytes());
  EXPECT_EQ(IncrementalLM::cache_bytes_for(m->options(), int64_t(1) << 62, 4), -1);
}

TEST(IncrementalLM, ReluModelMatchesForward) {
  at::manual_seed(8);
  auto o = tiny_lm("decoder_only", {16, 32}, {1, 2});
  o.layer.activation = "relu";
  LongNetLM m(o);
  auto t = teacher_forced(m, {20}, 30, 32);
  EXPECT_LT(t.step_error, 1e-4);
}

TEST(IncrementalLM, RefusesNonNestedSegments) {
  LongNetLM m(tiny_lm("decoder_only", {8, 12}, {1, 2}));
  m->eval();
  expect_error([&] { IncrementalLM inc(m, 1); }, "Generation needs nested segment lengths");
}

TEST(IncrementalLM, RefusesTrainingModeAndEmptyPrompts) {
  LongNetLM m(tiny_lm("decoder_only", {8, 16}, {1, 2}));
  expect_error([&] { IncrementalLM inc(m, 1); }, "training mode");
  m->eval();
  IncrementalLM inc(m, 2);
  expect_error([&] { inc.prefill(at::zeros({2, 4}, at::kLong), {4, 0}); }, "has length 0");
  IncrementalLM fresh(m, 1);
  expect_error([&] { fresh.step(at::zeros({1}, at::kLong)); }, "prefill a prompt first");
}

// Prompts prefilled in groups of rows (as generate groups prompts of similar lengths), in any
// order, leave the state a prefill of the whole padded batch leaves: the same logits after the
// prompts and at every step after, decoder-only and encoder-decoder, chunked.
TEST(IncrementalLM, PrefillRowsInGroupsEqualsTheWholeBatch) {
  for (const std::string variant : {"decoder_only", "encoder_decoder"}) {
    SCOPED_TRACE(variant);
    at::manual_seed(11);
    LongNetLM m(tiny_lm(variant, {8, 16, 64}, {1, 6, 12}));
    m->eval();
    const std::vector<int64_t> lengths = {5, 150, 70, 1, 64};
    const int64_t B = 5, P = 150;
    auto tokens = at::randint(m->options().vocab_size, {B, P}, at::kLong);
    IncrementalOptions io;
    io.prefill_chunk = 64;
    IncrementalLM whole(m, B, io), grouped(m, B, io);
    auto expected = whole.prefill(tokens, lengths);
    auto got = at::full({B, m->options().vocab_size}, NAN);
    for (const std::vector<int64_t>& rows : {std::vector<int64_t>{3, 0}, {4, 2}, {1}}) {
      int64_t Pg = 0;
      std::vector<int64_t> lg;
      for (const int64_t r : rows) lg.push_back(lengths[r]), Pg = std::max(Pg, lengths[r]);
      auto t = tokens.index_select(0, at::tensor(rows, at::kLong)).narrow(1, 0, Pg);
      got.index_copy_(0, at::tensor(rows, at::kLong), grouped.prefill_rows(t, lg, rows));
    }
    EXPECT_LT(worst_row_error(got, expected), 1e-5);
    EXPECT_TRUE(at::equal(grouped.positions(), whole.positions()));
    for (int64_t s = 0; s < 70; ++s) {
      auto next = at::randint(m->options().vocab_size, {B}, at::kLong);
      const double e = worst_row_error(grouped.step(next), whole.step(next));
      ASSERT_LT(e, 1e-5) << "step " << s;
    }
  }
  LongNetLM m(tiny_lm("decoder_only", {8, 16}, {1, 2}));
  m->eval();
  IncrementalLM inc(m, 3);
  const auto t = at::zeros({2, 4}, at::kLong);
  expect_error([&] { inc.prefill_rows(t, {4, 4}, {0, 0}); }, "given twice");
  expect_error([&] { inc.prefill_rows(t, {4, 4}, {0, 3}); }, "outside [0, 3)");
  expect_error([&] { inc.prefill_rows(t, {4, 4}, {0}); }, "tokens must be (1, P)");
}

// The state after 32K tokens and after 1M tokens: the same bytes, no reallocation while
// stepping, and at 1M the step's logits equal the full forward of the last block alone (the
// block-mode reference makes every block independent of what came before it).
TEST(IncrementalLM, ConstantMemoryFrom32KTo1M) {
  at::manual_seed(9);
  LongNetLMOptions o = tiny_lm("decoder_only", {64, 256}, {1, 4}, /*heads=*/2);
  o.num_layers = 1;
  o.layer.dim_feedforward = 16;
  LongNetLM m(o);
  m->eval();
  std::vector<int64_t> state;
  for (int64_t P : {int64_t(32768) + 37, (int64_t(1) << 20) + 37}) {
    const int64_t steps = 6, N = P + steps;
    auto tokens = at::randint(o.vocab_size, {1, N}, at::kLong);
    IncrementalLM inc(m, 1);
    inc.prefill(tokens.narrow(1, 0, P), {P});
    const void* k0 = inc.caches()[0]->keys().data_ptr();
    const int64_t block_start = P / 256 * 256;
    at::Tensor block_logits;
    {
      at::NoGradGuard no_grad;
      block_logits = m->forward(tokens.narrow(1, block_start, N - block_start));
    }
    for (int64_t s = 0; s < steps - 1; ++s) {
      auto logits = inc.step(tokens.narrow(1, P + s, 1).reshape({1}));
      EXPECT_LT(rel_error(logits[0], block_logits[0][P + s - block_start]), 1e-4) << "P " << P;
    }
    EXPECT_EQ(inc.caches()[0]->keys().data_ptr(), k0);
    EXPECT_EQ(IncrementalLM::cache_bytes_for(o, 1, 4), inc.cache_bytes());
    state.push_back(inc.state_bytes());
  }
  EXPECT_EQ(state[0], state[1]);
  // H * sum ceil(w / r) rows of k and v, float32, one layer.
  EXPECT_EQ(state[0] - 2 * 8, 2 * 2 * (64 + 64) * 8 * 4 + 3 * 16 * 16 * 4 + 3 * 16 * 4);
}

TEST(IncrementalLM, CudaBFloat16WithinTwiceNaiveError) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(10);
  auto o = tiny_lm("decoder_only", {16, 32, 128}, {1, 6, 12}, /*heads=*/12);
  o.layer.d_model = 12 * 64;  // the kernel's head dim 64
  o.layer.dim_feedforward = 512;
  LongNetLM ref(o);
  ref->eval();
  ref->to(at::kCUDA);
  LongNetLM m(o);
  m->eval();
  {
    at::NoGradGuard no_grad;
    auto src = ref->named_parameters();
    for (auto& p : m->named_parameters()) p.value().copy_(src[p.key()].cpu());
  }
  // The incremental bfloat16 logits and the full bfloat16 forward, both against float32; the
  // step with the fused small linears and with one op per module.
  auto inc = teacher_forced(m, {150, 70}, 120, 128, at::kCUDA, at::kBFloat16, ref);
  EXPECT_TRUE(inc.fused);
  auto ops = teacher_forced(m, {150, 70}, 120, 128, at::kCUDA, at::kBFloat16, ref, false);
  EXPECT_FALSE(ops.fused);
  LongNetLM naive(o);
  naive->eval();
  {
    at::NoGradGuard no_grad;
    auto src = ref->named_parameters();
    for (auto& p : naive->named_parameters()) p.value().copy_(src[p.key()].cpu());
  }
  naive->to(at::kCUDA, at::kBFloat16);
  at::manual_seed(5);
  auto tokens = at::randint(o.vocab_size, {2, 270}, at::kLong).to(at::kCUDA);
  at::NoGradGuard no_grad;
  const double naive_err = worst_row_error(naive->forward(tokens), ref->forward(tokens));
  EXPECT_LT(inc.step_error, 2 * naive_err + 1e-3) << "naive " << naive_err;
  EXPECT_LT(inc.prefill_error, 2 * naive_err + 1e-3) << "naive " << naive_err;
  EXPECT_LT(ops.step_error, 2 * naive_err + 1e-3) << "naive " << naive_err;
}

TEST(IncrementalLM, CudaFusedStepMatchesForward_float32_geluRelu_batchOfLengths) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  for (const char* act : {"gelu", "relu"}) {
    at::manual_seed(22);
    auto o = tiny_lm("decoder_only", {8, 16, 64}, {1, 6, 12});
    o.layer.activation = act;
    LongNetLM m(o);
    // Prompts mid-segment, on a block boundary and of one token; steps across two blocks.
    auto t = teacher_forced(m, {70, 64, 1}, 64 + 9, 64, at::kCUDA, at::kFloat);
    EXPECT_TRUE(t.fused) << act;
    EXPECT_LT(t.prefill_error, 1e-4) << act;
    EXPECT_LT(t.step_error, 1e-4) << act;
  }
}

TEST(IncrementalLM, FusedStepOnlyWhereItApplies) {
  LongNetLM m(tiny_lm("decoder_only", {8, 16}, {1, 2}));
  m->eval();
  EXPECT_FALSE(IncrementalLM(m, 1).fused_step());  // CPU
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  m->to(at::kCUDA);
  IncrementalOptions all;
  all.fused_step_max_batch = kSmallLinearMaxRows + 5;
  EXPECT_TRUE(IncrementalLM(m, 1).fused_step());
  EXPECT_TRUE(IncrementalLM(m, kSmallLinearMaxRows, all).fused_step());
  EXPECT_FALSE(IncrementalLM(m, kSmallLinearMaxRows + 1, all).fused_step());  // batch too large
  IncrementalOptions two;
  two.fused_step_max_batch = 2;
  EXPECT_TRUE(IncrementalLM(m, 2, two).fused_step());
  EXPECT_FALSE(IncrementalLM(m, 3, two).fused_step());
  IncrementalOptions off;
  off.fused_step = false;
  EXPECT_FALSE(IncrementalLM(m, 1, off).fused_step());
  LongNetLM ed(tiny_lm("encoder_decoder", {8, 16}, {1, 2}));
  ed->eval();
  ed->to(at::kCUDA);
  EXPECT_FALSE(IncrementalLM(ed, 1).fused_step());  // decoder-only models only
}

// ---- the fused small-batch linear ---------------------------------------------------------------

// Relative error of the whole of a against b (float64).
double tensor_error(const at::Tensor& a, const at::Tensor& b) {
  auto ad = a.to(at::kDouble).cpu(), bd = b.to(at::kDouble).cpu();
  return ((ad - bd).norm() / bd.norm()).item<double>();
}

SmallLinearArgs args_to(const SmallLinearArgs& a, at::ScalarType t) {
  SmallLinearArgs c = a;
  auto cast = [&](const at::Tensor& u) { return u.defined() ? u.to(t) : u; };
  c.weight = cast(a.weight), c.bias = cast(a.bias);
  if (t == at::kDouble) c.gamma = cast(a.gamma), c.beta = cast(a.beta);
  return c;
}

TEST(SmallLinear, CudaKernelMatchesReference_everyOption) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(21);
  struct Shape {
    int64_t M, K, N;
  };
  // Rows 1..8; K of one vector per lane or less, of several chunks, and past the 48 KiB stage
  // (8 x 3000 float32); N of one column, fewer than a block's warps, and many per warp.
  const std::vector<Shape> shapes = {{1, 768, 2304}, {3, 3072, 768}, {8, 24, 5},
                                     {5, 2056, 131}, {2, 4104, 1},   {7, 16, 1000},
                                     {8, 3000, 64},  {4, 768, 40000}};
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    // One rounding of the output in the dtype, relative.
    const double ulp = dtype == at::kFloat ? 0 : dtype == at::kBFloat16 ? 1.0 / 256 : 1.0 / 2048;
    for (const auto& s : shapes) {
      for (int v = 0; v < 24; ++v) {
        const bool ln = v & 1, bias = v & 2, residual = v & 4;
        const auto act = static_cast<SmallLinearActivation>(v / 8);
        SmallLinearArgs a;
        a.weight = (at::randn({s.N, s.K}, cuda) / std::sqrt(double(s.K))).to(dtype);
        if (bias) a.bias = (0.1 * at::randn({s.N}, cuda)).to(dtype);
        if (ln) {
          a.gamma = 1 + 0.1 * at::randn({s.K}, cuda);
          a.beta = 0.1 * at::randn({s.K}, cuda);
          a.eps = 1e-5;
        }
        a.activation = act;
        auto x = at::randn({s.M, s.K}, cuda).to(dtype);
        auto res = residual ? at::randn({s.M, s.N}, cuda).to(dtype) : at::Tensor();
        const std::string what = std::string(c10::toString(dtype)) + " M " + std::to_string(s.M) +
                                 " K " + std::to_string(s.K) + " N " + std::to_string(s.N) +
                                 " variant " + std::to_string(v);
        ASSERT_TRUE(small_linear_supported(x, a)) << what;
        auto got = small_linear(x, a, res);
        auto exact = small_linear_reference(x.to(at::kDouble), args_to(a, at::kDouble),
                                            res.defined() ? res.to(at::kDouble) : res);
        const double err = tensor_error(got, exact);
        if (dtype == at::kFloat) {
          EXPECT_LT(err, 1e-5) << what;
        } else {
          const double naive = tensor_error(small_linear_reference(x, a, res), exact);
          EXPECT_LT(err, 2 * naive + ulp) << what << " naive " << naive;
        }
      }
    }
  }
}

TEST(SmallLinear, CudaKernelMatchesReference_xposOnTheOutput) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(23);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  struct Shape {
    int64_t M, K, heads, D;
  };
  // The q, k, v projection (N = 3 heads D): head dims 2 to 128, rows 1 to 8, positions far
  // apart (each row its own tables).
  for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    const double ulp = dtype == at::kFloat ? 0 : dtype == at::kBFloat16 ? 1.0 / 256 : 1.0 / 2048;
    for (Shape s :
         {Shape{1, 768, 12, 64}, Shape{3, 64, 4, 16}, Shape{8, 256, 2, 128}, Shape{5, 24, 3, 2},
          Shape{2, 256, 64, 128}}) {  // (the last: 12,288 column pairs, several per warp)
      for (bool bias : {false, true}) {
        const int64_t W = s.heads * s.D;
        SmallLinearArgs a;
        a.weight = (at::randn({3 * W, s.K}, cuda) / std::sqrt(double(s.K))).to(dtype);
        if (bias) a.bias = (0.1 * at::randn({3 * W}, cuda)).to(dtype);
        a.gamma = 1 + 0.1 * at::randn({s.K}, cuda);
        a.beta = 0.1 * at::randn({s.K}, cuda);
        // (none at a block's centre, xPos's reference, where it does not rotate)
        auto positions = (301 + 7919 * at::arange(s.M, cuda.dtype(at::kLong))) % (1 << 20);
        // (blocks of 4,096: xPos's scale stays within float16's range)
        const auto tables = xpos_tables_at(positions, 4096, s.D, at::kFloat);
        const auto exact_tables = xpos_tables_at(positions, 4096, s.D, at::kDouble);
        a.rotate = &tables, a.rotate_width = W, a.rotate_head_dim = s.D;
        auto x = at::randn({s.M, s.K}, cuda).to(dtype);
        const std::string what = std::string(c10::toString(dtype)) + " M " + std::to_string(s.M) +
                                 " heads " + std::to_string(s.heads) + " D " + std::to_string(s.D) +
                                 (bias ? " bias" : "");
        ASSERT_TRUE(small_linear_supported(x, a)) << what;
        auto got = small_linear(x, a);
        auto da = args_to(a, at::kDouble);
        da.rotate = &exact_tables;
        auto exact = small_linear_reference(x.to(at::kDouble), da);
        const double err = tensor_error(got, exact);
        if (dtype == at::kFloat) {
          EXPECT_LT(err, 1e-5) << what;
        } else {
          const double naive = tensor_error(small_linear_reference(x, a), exact);
          EXPECT_LT(err, 2 * naive + ulp) << what << " naive " << naive;
        }
        // The rotation is really there: the unrotated product is far from it.
        SmallLinearArgs plain = da;
        plain.rotate = nullptr;
        EXPECT_GT(tensor_error(small_linear_reference(x.to(at::kDouble), plain), exact), 1e-2)
            << what;
      }
    }
  }
}

TEST(SmallLinear, ReferenceRotatesQueriesAndKeysOnly) {
  at::manual_seed(24);
  const int64_t M = 1, K = 32, H = 3, D = 8, W = H * D;
  SmallLinearArgs a;
  a.weight = at::randn({3 * W, K}, at::kDouble);
  for (int64_t pos : {0, 1, 2048, 4095, 777777}) {
    const auto tables = xpos_tables_at(at::full({M}, pos, at::kLong), 4096, D, at::kDouble);
    SmallLinearArgs r = a;
    r.rotate = &tables, r.rotate_width = W, r.rotate_head_dim = D;
    auto x = at::randn({M, K}, at::kDouble);
    auto plain = small_linear_reference(x, a), rotated = small_linear_reference(x, r);
    auto q = xpos_rotate_at(plain.narrow(1, 0, W).reshape({M, 1, H, D}), tables, false);
    auto k = xpos_rotate_at(plain.narrow(1, W, W).reshape({M, 1, H, D}), tables, true);
    EXPECT_TRUE(at::allclose(rotated.narrow(1, 0, W), q.reshape({M, W}))) << pos;
    EXPECT_TRUE(at::allclose(rotated.narrow(1, W, W), k.reshape({M, W}))) << pos;
    EXPECT_TRUE(at::equal(rotated.narrow(1, 2 * W, W), plain.narrow(1, 2 * W, W))) << pos;
    // (the block's centre, 2048, is xPos's reference: no rotation there)
    if (pos % 4096 != 2048) {
      EXPECT_GT(tensor_error(rotated, plain), 1e-2) << pos;
    }
  }
}

TEST(SmallLinear, RefusesWhatTheKernelDoesNotTake) {
  SmallLinearArgs a;
  a.weight = at::randn({4, 16});
  EXPECT_FALSE(small_linear_supported(at::randn({1, 16}), a));  // CPU
  expect_error([&] { small_linear(at::randn({1, 16}), a); }, "does not take");
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  a.weight = at::randn({4, 12}, cuda).to(at::kBFloat16);
  EXPECT_FALSE(small_linear_supported(at::randn({1, 12}, cuda).to(at::kBFloat16), a));  // K % 8
  a.weight = at::randn({4, 16}, cuda);
  EXPECT_TRUE(small_linear_supported(at::randn({8, 16}, cuda), a));
  EXPECT_FALSE(small_linear_supported(at::randn({9, 16}, cuda), a));                    // rows
  EXPECT_FALSE(small_linear_supported(at::randn({1, 16}, cuda).to(at::kBFloat16), a));  // dtypes
  a.weight = at::randn({4, 4096}, cuda);
  EXPECT_FALSE(small_linear_supported(at::randn({8, 4096}, cuda), a));  // 128 KiB staged
  a.weight = at::randn({4, 16}, cuda);
  a.gamma = at::ones({16}, cuda).to(at::kBFloat16);
  a.beta = at::zeros({16}, cuda);
  EXPECT_FALSE(small_linear_supported(at::randn({1, 16}, cuda), a));  // gamma not float32
}

// ---- sampling -----------------------------------------------------------------------------------

TEST(Sampling, GreedyAndDegenerateSettingsPickTheArgmax) {
  at::manual_seed(12);
  auto logits = at::randn({3, 40});
  auto best = logits.argmax(-1);
  SamplingOptions g;
  g.greedy = true;
  EXPECT_TRUE(at::equal(sample_next(logits, g), best));
  SamplingOptions t0;
  t0.temperature = 0;
  EXPECT_TRUE(at::equal(sample_next(logits, t0), best));
  SamplingOptions k1;
  k1.top_k = 1;
  EXPECT_TRUE(at::equal(sample_next(logits, k1), best));
  // Any top_p in (0, 1] keeps the most likely token, also below float32's smallest number.
  for (double top_p : {1e-6, 1e-46, 1e-300, 4.9e-324}) {
    SamplingOptions p0;
    p0.top_p = top_p;
    EXPECT_TRUE(at::equal(sample_next(logits, p0), best)) << top_p;
  }
}

TEST(Sampling, TopKAndTopPKeepOnlyTheirTokens) {
  at::manual_seed(13);
  auto logits = at::randn({1, 30}).expand({2000, 30}).contiguous();
  SamplingOptions k;
  k.top_k = 3;
  auto top3 = std::get<1>(logits[0].topk(3));
  auto got = sample_next(logits, k);
  EXPECT_TRUE(at::isin(got, top3).all().item<bool>());
  EXPECT_EQ(std::get<0>(at::_unique(got)).size(0), 3);  // all three drawn in 2000 tries
  SamplingOptions p;
  p.top_p = 0.5;
  auto probs = logits[0].softmax(-1);
  auto [sorted, order] = probs.sort(-1, true);
  const int64_t keep = (sorted.cumsum(-1) - sorted < 0.5).sum().item<int64_t>();
  EXPECT_TRUE(at::isin(sample_next(logits, p), order.narrow(0, 0, keep)).all().item<bool>());
  SamplingOptions bad;
  bad.top_p = 0;
  expect_error([&] { sample_next(logits, bad); }, "top_p");
}

}  // namespace
}  // namespace longnet

// ---- loading and evaluation (train/) --------------------------------------------------------

namespace longnet {
namespace {

std::string temp_path(const std::string& name) {
  std::string tmpl = ::testing::TempDir() + "longnet_generation_XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return tmpl + "/" + name;
}

const char* kTinyConfig =
    "model:\n  d_model: 32\n  num_heads: 4\n  num_layers: 2\n  dim_feedforward: 48\n"
    "  vocab_size: 256\n  segment_lengths: [8, 16, 32]\n  dilation_rates: [1, 2, 4]\n";

TEST(ModelLoad, ParametersFileWithConfig) {
  const auto cfg_path = temp_path("tiny.yaml");
  std::ofstream(cfg_path) << kTinyConfig;
  ModelLoadOptions o;
  o.config = cfg_path;
  o.random_init = true;
  o.seed = 3;
  auto a = model_load(o);
  const auto params = temp_path("params.pt");
  parameters_save(*a.model, params);
  ModelLoadOptions p;
  p.checkpoint = params;
  p.config = cfg_path;
  auto b = model_load(p);
  EXPECT_FALSE(b.model->is_training());
  auto tokens = at::randint(256, {2, 40}, at::kLong);
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(a.model->forward(tokens), b.model->forward(tokens)));
  // Without its config, a parameters file is not a checkpoint: the error says what to add.
  ModelLoadOptions alone;
  alone.checkpoint = params;
  expect_error([&] { model_load(alone); }, "needs --config");
  // A config whose model does not fit the file.
  std::string three = kTinyConfig;
  three.replace(three.find("num_layers: 2"), 13, "num_layers: 3");
  std::ofstream(cfg_path) << three;
  expect_error([&] { model_load(p); }, "lacks");
  // Non-finite parameters are refused by name (they would generate nonsense without an error).
  std::ofstream(cfg_path) << kTinyConfig;
  {
    at::NoGradGuard no_grad;
    auto name = a.model->named_parameters().begin()->key();
    a.model->named_parameters()[name].view(-1)[3] = std::nan("");
    parameters_save(*a.model, params);
    expect_error([&] { model_load(p); }, "parameter '" + name + "' holds 1 NaN or infinite");
  }
}

// A random tiny model (kTinyConfig), and the state a trainer checkpoint holds of it (config,
// model with its parameters times `scale`, step), for tests that alter it.
LongNetLM tiny_model() {
  const auto cfg_path = temp_path("tiny.yaml");
  std::ofstream(cfg_path) << kTinyConfig;
  ModelLoadOptions o;
  o.config = cfg_path;
  o.random_init = true;
  return model_load(o).model;
}
c10::impl::GenericDict checkpoint_state(const LongNetLM& model, int64_t step, double scale = 1) {
  c10::impl::GenericDict params(c10::StringType::get(), c10::TensorType::get());
  for (const auto& p : model->named_parameters())
    params.insert(p.key(), p.value().detach() * scale);
  c10::impl::GenericDict state(c10::StringType::get(), c10::AnyType::get());
  state.insert("config", std::string(kTinyConfig));
  state.insert("model", params);
  state.insert("step", step);
  return state;
}

// A checkpoint whose entries have other types than `longnet train` writes (another tool's, or
// altered) is refused naming the entry, not with a LibTorch type error.
TEST(ModelLoad, CheckpointEntriesOfAnotherType) {
  const LongNetLM model = tiny_model();
  auto good = [&] {
    auto state = checkpoint_state(model, 5);
    state.insert("tokenizer", std::string("bytes"));
    return state;
  };
  const auto dir = temp_path("checkpoints");
  ModelLoadOptions p;
  p.checkpoint = checkpoint_path(dir, 5);
  checkpoint_write(dir, 5, good(), 10);
  EXPECT_EQ(model_load(p).tokenizer.spec, "bytes");
  const std::vector<std::pair<std::string, c10::IValue>> bad = {{"config", int64_t{1}},
                                                                {"model", std::string("weights")},
                                                                {"tokenizer", int64_t{2}},
                                                                {"tokenizer_hash", at::zeros({2})},
                                                                {"step", std::string("5")}};
  for (const auto& [key, value] : bad) {
    auto state = good();
    state.insert_or_assign(key, value);
    checkpoint_write(dir, 5, state, 10);
    expect_error([&] { model_load(p); }, "its '" + key + "' entry is not");
  }
  auto state = good();
  auto params = state.at("model").toGenericDict();
  params.insert_or_assign(params.begin()->key(), c10::IValue(int64_t{3}));
  checkpoint_write(dir, 5, state, 10);
  expect_error([&] { model_load(p); }, "a Int, not a tensor");
}

// A damaged trainer checkpoint is said to be damaged, without the hint for parameters files
// ("needs --config"), which only a readable file that is no trainer checkpoint gets.
TEST(ModelLoad, DamagedCheckpointIsNotCalledAParametersFile) {
  const LongNetLM model = tiny_model();
  const auto dir = temp_path("damaged");
  checkpoint_write(dir, 5, checkpoint_state(model, 5), 10);
  ModelLoadOptions p;
  p.checkpoint = checkpoint_path(dir, 5);
  ASSERT_EQ(::truncate(p.checkpoint.c_str(), std::filesystem::file_size(p.checkpoint) - 9), 0);
  const auto msg = expect_throw<std::runtime_error>([&] { model_load(p); }, {"truncated"});
  EXPECT_EQ(msg.find("needs --config"), std::string::npos) << msg;
  std::ofstream(p.checkpoint, std::ios::trunc) << "name,value\n";
  expect_throw<std::runtime_error>([&] { model_load(p); }, {"not a checkpoint", "needs --config"});
}

// export refuses what it cannot write faithfully: non-finite parameters, and finite ones past
// the range of the dtype asked for (float16's 65,504), which the cast would make infinite.
TEST(Export, RefusesValuesTheDtypeCannotHold) {
  const LongNetLM model = tiny_model();
  auto write = [&](double scale, const std::string& dir) {
    checkpoint_write(dir, 7, checkpoint_state(model, 7, scale), 10);
    return checkpoint_path(dir, 7);
  };
  const auto big = write(1e6, temp_path("big")), inf = write(INFINITY, temp_path("inf"));
  expect_error([&] { checkpoint_export(big, temp_path("out16"), "float16"); },
               "in absolute value, past the range of float16");
  EXPECT_GT(checkpoint_export(big, temp_path("outbf16"), "bfloat16").tensors, 0);
  expect_error([&] { checkpoint_export(inf, temp_path("outinf"), ""); },
               "NaN or infinite value(s)");
  // Loading for generation in float16 is refused the same way, naming the parameter.
  ModelLoadOptions half;
  half.checkpoint = big;
  half.dtype = at::kHalf;
  expect_error([&] { model_load(half); }, "past the range of Half (largest 65504)");
  half.dtype = at::kBFloat16;
  EXPECT_NO_THROW(model_load(half));
}

// export checks a checkpoint as generate and eval do: an integer or extra parameter, another
// format or a negative step is refused, and nothing is written (no --out directory either).
TEST(Export, ChecksTheCheckpointAsLoadingDoes) {
  const LongNetLM model = tiny_model();
  const auto dir = temp_path("export_checks");
  auto refused = [&](c10::impl::GenericDict state, const std::string& message) {
    checkpoint_write(dir, 3, state, 10);
    const auto out = temp_path("export_checks_out");
    expect_error([&] { checkpoint_export(checkpoint_path(dir, 3), out, "float16"); }, message);
    EXPECT_FALSE(std::filesystem::exists(out)) << message;
  };
  {
    auto state = checkpoint_state(model, 3);
    auto params = state.at("model").toGenericDict();
    params.insert_or_assign(params.begin()->key(), at::zeros({1}, at::kLong));
    refused(state, "not a floating-point tensor");
  }
  {
    auto state = checkpoint_state(model, 3);
    state.at("model").toGenericDict().insert("extra.weight", at::zeros({2}));
    refused(state, "parameters, the model of its config");
  }
  {
    auto state = checkpoint_state(model, 3);
    state.insert("format", std::string("longnet-train-999"));
    refused(state, "has format 'longnet-train-999'");
  }
  refused(checkpoint_state(model, -5), "below 0");
  EXPECT_EQ(checkpoint_export(
                [&] {
                  checkpoint_write(dir, 3, checkpoint_state(model, 3), 10);
                  return checkpoint_path(dir, 3);
                }(),
                temp_path("export_checks_good"), "")
                .step,
            3);
}

TEST(ContextEval, WindowEndsAndErrors) {
  ContextEvalOptions o;
  o.context_lens = {16, 64, 32};
  o.windows = 3;
  EXPECT_EQ(context_eval_window_ends(o, 1000), (std::vector<int64_t>{64, 531, 999}));
  expect_error([&] { context_eval_window_ends(o, 64); }, "needs at least 65");
  o.score_tokens = 17;
  expect_error([&] { context_eval_window_ends(o, 1000); }, "must lie in [1, 16]");
  // Windows never score a token twice: ends lie in [64, 999], so 1 + 935 / 16 = 59 windows of 16
  // scored tokens fit and 60 do not (not 1000 / 16 = 62, which counts the whole split).
  o.score_tokens = 0;
  for (int64_t windows : {2, 7, 58, 59}) {
    o.windows = windows;
    const auto ends = context_eval_window_ends(o, 1000);
    for (size_t i = 1; i < ends.size(); ++i)
      EXPECT_GE(ends[i] - ends[i - 1], 16) << windows << " windows, end " << i;
  }
  o.windows = 60;
  expect_error([&] { context_eval_window_ends(o, 1000); }, "use at most 59 windows");
  o.context_lens = {32, 700};
  o.windows = 3;
  expect_error([&] { context_eval_window_ends(o, 740); }, "use at most 2 windows");
}

// Every context length scores the same final tokens: each row equals the cross-entropy of the
// window's forward on its last T positions, computed directly.
TEST(ContextEval, ScoresTheSameFinalTokens) {
  at::manual_seed(4);
  LongNetLMOptions m = tiny_lm("decoder_only", {8, 16, 32}, {1, 2, 4}, 4);
  m.vocab_size = 256;
  LongNetLM model(m);
  model->eval();
  auto val = at::randint(256, {700}, at::kLong);
  ValidationTokens data;
  data.size = 700;
  data.vocab_size = 256;
  data.read = [val](int64_t start, int64_t count) { return val.narrow(0, start, count).clone(); };
  ContextEvalOptions o;
  o.context_lens = {24, 48, 100};
  o.score_tokens = 10;
  o.windows = 3;
  o.batch_size = 2;
  auto grid = process_grid_create(1, 1, c10::kCPU);
  LocalAttention local;
  auto rows = context_eval(model, data, *grid, local, o);
  ASSERT_EQ(rows.size(), 3u);
  const auto ends = context_eval_window_ends(o, 700);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t c = o.context_lens[i];
    double sum = 0;
    for (int64_t e : ends) {
      auto logits = model->forward(val.narrow(0, e - c, c).view({1, c}));
      auto lp = logits[0].narrow(0, c - 10, 10).log_softmax(-1);
      auto tgt = val.narrow(0, e - 9, 10);
      sum -= lp.gather(1, tgt.view({-1, 1})).sum().item<double>();
    }
    EXPECT_EQ(rows[i].tokens, 30);
    EXPECT_NEAR(rows[i].loss, sum / 30, 1e-5) << "context " << c;
  }
}

// The scope sets CUDA autocast and its dtype (LibTorch's CUDA default is float16) and puts both
// back at exit; the state is process-wide, so this holds on a machine without a GPU too.
TEST(CudaAutocastScope, SetsBFloat16AndRestores) {
  const auto dtype_before = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kHalf);
  {
    CudaAutocastScope on(true);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCUDA));
    EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), at::kBFloat16);
    {
      CudaAutocastScope off(false);
      EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
    }
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCUDA));
    EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), at::kBFloat16);
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
  EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), at::kHalf);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype_before);
}

// `longnet eval --dtype bfloat16` on a GPU: the forward runs in bfloat16 (it once ran in
// CUDA's default float16 and xPos refused a longest segment of 8,192), and its losses agree
// with float32's.
TEST(ContextEval, CudaBFloat16AgreesWithFloat32AtLongSegments) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::autocast::set_autocast_dtype(at::kCUDA, at::kHalf);  // LibTorch's default, as in `longnet`
  at::manual_seed(6);
  LongNetLMOptions m = tiny_lm("decoder_only", {2048, 8192}, {1, 4}, 4);
  m.vocab_size = 256;
  LongNetLM model(m);
  model->eval();
  model->to(at::kCUDA);
  auto val = at::randint(256, {20000}, at::kLong);
  ValidationTokens data;
  data.size = val.size(0);
  data.vocab_size = 256;
  data.read = [val](int64_t start, int64_t count) { return val.narrow(0, start, count).clone(); };
  ContextEvalOptions o;
  o.context_lens = {4096, 16384};
  o.score_tokens = 1024;
  o.windows = 2;
  auto grid = process_grid_create(1, 1, c10::kCUDA);
  LocalAttention local;
  const auto f32 = context_eval(model, data, *grid, local, o);
  o.bf16_autocast = true;
  const auto bf16 = context_eval(model, data, *grid, local, o);
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
  ASSERT_EQ(bf16.size(), f32.size());
  for (size_t i = 0; i < f32.size(); ++i)
    EXPECT_NEAR(bf16[i].loss, f32[i].loss, 0.02 * f32[i].loss) << "context " << f32[i].context_len;
}

}  // namespace
}  // namespace longnet
