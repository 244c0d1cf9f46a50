// Sequence-parallel dilated attention against the single-process result: every rank builds the
// whole input from one seed, runs its shard, and checks its part of out, dq, dk, dv (float64, so
// only summation order differs). Run by CTest under mpirun -np 2 and -np 4; at -np 1 the same
// cases check the local path. Shapes are given in units of the local length L so that each
// world size covers w < L, w = L, w = 2L (and 3L: an uneven last segment at 4 ranks), w = N,
// w > N, r not dividing L, the paper's r = 6 and 12, causal and not. Also the generation prefill
// split over the ranks (parallel/parallel_prefill.h) against one rank's.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "longnet/core/dilated_attention.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/parallel_prefill.h"
#include "longnet/parallel/sequence_layout.h"
#include "longnet/parallel/sequence_parallel_attention.h"
#include "longnet/tests/dilated_reference.h"
#include "longnet/tests/test_util.h"

namespace longnet {
namespace {

using testing::rel_error;

constexpr int64_t kL = 24;  // tokens per rank

// A segment length as a multiple of L: -1 means N (the whole sequence), -4 means 4 N.
struct SpCase {
  std::vector<double> w_in_L;
  std::vector<int64_t> r;
  int64_t B, H, D;
  bool causal;
  std::string name;
};

// GoogleTest prints parameters by name instead of as bytes.
void PrintTo(const SpCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<int64_t> segments_of(const SpCase& c, int64_t P) {
  std::vector<int64_t> w;
  for (double x : c.w_in_L) w.push_back(x < 0 ? int64_t(-x * kL * P) : int64_t(x * kL));
  return w;
}

class SequenceParallel : public ::testing::TestWithParam<SpCase> {};

TEST_P(SequenceParallel, MatchesSingleProcess) {
  const SpCase& c = GetParam();
  auto grid = process_grid_create(0, mpi_world_size(), c10::kCPU);
  const int64_t P = grid->sequence_parallel, N = kL * P, t = grid->sp_index;
  DilatedAttentionOptions o;
  o.segment_lengths = segments_of(c, P);
  o.dilation_rates = c.r;
  o.is_causal = c.causal;

  at::manual_seed(42);  // the same full input on every rank
  auto opt = at::TensorOptions().dtype(at::kDouble);
  auto q = at::randn({c.B, N, c.H, c.D}, opt), k = at::randn_like(q), v = at::randn_like(q);
  auto gout = at::randn_like(q);
  auto full = dilated_attention_forward(q, k, v, o);
  auto [dq, dk, dv] = dilated_attention_backward(gout, q, k, v, full.out, full.lse, {}, o);

  auto part = [&](const at::Tensor& x) { return x.narrow(1, t * kL, kL).contiguous(); };
  SequenceParallelAttention sp(grid);
  auto f = sp.forward(part(q), part(k), part(v), o);
  auto [sdq, sdk, sdv] = sp.backward(part(gout), part(q), part(k), part(v), f, o);
  EXPECT_LT(rel_error(f.out, part(full.out)), 1e-12);
  auto lse_ref = part(full.lse);  // -inf on rows no branch selects
  EXPECT_TRUE(at::equal(f.lse.isinf(), lse_ref.isinf()));
  EXPECT_LT(rel_error(f.lse.masked_fill(f.lse.isinf(), 0), lse_ref.masked_fill(lse_ref.isinf(), 0)),
            1e-12);
  EXPECT_LT(rel_error(sdq, part(dq)), 1e-11);
  EXPECT_LT(rel_error(sdk, part(dk)), 1e-11);
  EXPECT_LT(rel_error(sdv, part(dv)), 1e-11);

  // The autograd path gives the same gradients.
  auto ql = part(q).requires_grad_(true), kl = part(k).requires_grad_(true),
       vl = part(v).requires_grad_(true);
  auto out = sp.attend(ql, kl, vl, o);
  out.backward(part(gout));
  EXPECT_LT(rel_error(out.detach(), part(full.out)), 1e-12);
  EXPECT_LT(rel_error(ql.grad(), part(dq)), 1e-11);
  EXPECT_LT(rel_error(kl.grad(), part(dk)), 1e-11);
  EXPECT_LT(rel_error(vl.grad(), part(dv)), 1e-11);
}

const std::vector<SpCase> kSpCases = {
    {{0.25, 1}, {1, 2}, 2, 4, 8, false, "LocalOnly_wQuarterL_L"},
    {{0.25, 1}, {1, 2}, 2, 4, 8, true, "LocalOnlyCausal_wQuarterL_L"},
    {{1, 2}, {1, 2}, 1, 4, 8, false, "SpanTwo_wL_2L"},
    {{1, 2}, {1, 2}, 1, 4, 8, true, "SpanTwoCausal_wL_2L"},
    {{0.5, -1}, {1, 4}, 2, 4, 8, false, "SpanAll_wN_r4"},
    {{0.5, -1}, {1, 4}, 2, 4, 8, true, "SpanAllCausal_wN_r4"},
    {{2, -1}, {5, 7}, 1, 7, 8, false, "RateNotDividingL_r5_7"},
    {{2, -1}, {5, 7}, 1, 7, 8, true, "RateNotDividingLCausal_r5_7"},
    {{0.5, 1, 2, -1}, {1, 2, 6, 12}, 1, 12, 8, true, "PaperRatesCausal_H12_r6_12"},
    {{3}, {2}, 1, 3, 8, true, "UnevenLastSegment_w3L"},
    {{-4}, {3}, 1, 3, 8, false, "SegmentLongerThanN_w4N"},
    {{1, -1}, {24, 48}, 1, 4, 8, true, "RateAboveL_r24_48"},
};

INSTANTIATE_TEST_SUITE_P(Cases, SequenceParallel, ::testing::ValuesIn(kSpCases),
                         [](const auto& info) { return info.param.name; });

TEST(SequenceParallelErrors, SegmentNotNestedWithLocalLength) {
  auto grid = process_grid_create(0, mpi_world_size(), c10::kCPU);
  if (grid->sequence_parallel == 1) GTEST_SKIP() << "needs more than one rank";
  DilatedAttentionOptions o;
  o.segment_lengths = {kL + 8};
  o.dilation_rates = {1};
  auto q = at::randn({1, kL, 2, 8});
  SequenceParallelAttention sp(grid);
  testing::expect_error([&] { sp.forward(q, q, q, o); }, "neither divides the local length L");
}

TEST(SequenceParallelErrors, SequenceNotDivisibleByRanks) {
  testing::expect_error([] { SequenceLayout(100, 3, {}); }, "does not split evenly over 3 ranks");
  // The lengths suggested split for the segments too (126 and 129 would not: L = 42, 43).
  testing::expect_error([] { SequenceLayout(128, 3, {32, 64, 128}); }, "(e.g. 96 or 192)");
  testing::expect_error(
      [] {
        SequenceLayout(129, 3, {32, 64, 128});
      },
      "or a sequence length that splits over 3 ranks (e.g. 96 or 192)");
  // Near the largest lengths: no overflow, and nothing suggested past 2^40 (a config's limit).
  testing::expect_error([] { SequenceLayout(INT64_MAX, 2, {}); }, "(e.g. 9223372036854775806)");
  testing::expect_error([] { SequenceLayout((int64_t(1) << 40) - 1, 7, {}); },
                        "(e.g. 1099511627774) or");
  try {
    SequenceLayout(100, 3, {50});
    FAIL() << "expected an error";
  } catch (const OptionsError& e) {
    EXPECT_EQ(e.field(), "seq_len");
    EXPECT_EQ(e.related(), std::vector<std::string>{"sequence_parallel"});
  }
  try {
    SequenceLayout(96, 4, {8, 36});
    FAIL() << "expected an error";
  } catch (const OptionsError& e) {
    EXPECT_EQ(e.field(), "segment_lengths[1]");
    EXPECT_NE(std::string(e.what()).find("use a divisor of 24 (6, 8, 12, 24) or a multiple of 24"),
              std::string::npos)
        << e.what();
  }
  SequenceLayout ok(96, 4, {8, 24, 48, 96, 1000});
  EXPECT_EQ(ok.local_len(), 24);
  EXPECT_EQ(ok.offset(3), 72);
  EXPECT_FALSE(ok.spans(24));
  EXPECT_EQ(ok.span_ranks(48), 2);
  EXPECT_EQ(ok.span_ranks(1000), 4);  // clipped to N
}

TEST(SequenceParallel, BytesSentAreTheDilatedRowsOnly) {
  auto grid = process_grid_create(0, mpi_world_size(), c10::kCPU);
  const int64_t P = grid->sequence_parallel;
  if (P == 1) GTEST_SKIP() << "needs more than one rank";
  DilatedAttentionOptions o;
  o.segment_lengths = {kL * P};
  o.dilation_rates = {4};
  const int64_t B = 1, H = 4, D = 8;
  auto q = at::randn({B, kL, H, D});
  SequenceParallelAttention sp(grid);
  sp.forward(q, q, q, o);
  // K and V rows of 1/r of the local tokens per head: 2 * (L / r) * H * D floats.
  EXPECT_EQ(sp.bytes_sent(), 2 * (kL / 4) * H * D * B * int64_t(sizeof(float)));
}

// ---- the generation prefill split over the ranks ------------------------------------------------

struct PrefillCase {
  std::string variant;
  std::vector<int64_t> w, r;
  int64_t heads;
  std::vector<int64_t> prompts;  // lengths; each sequence then takes `steps` tokens one by one
  int64_t chunk, steps;
};

// Every rank prefills the batch alone and split over all ranks, from the same float64 model and
// tokens, then steps both generators teacher-forced: logits after the prompts and at every step
// must agree (the split's caches are the whole prefill's).
void expect_split_prefill_matches(const PrefillCase& c) {
  auto grid = process_grid_create(0, mpi_world_size(), c10::kCPU);
  LongNetLMOptions o;
  o.variant = c.variant;
  o.vocab_size = 40;
  o.num_layers = 2;
  o.num_encoder_layers = c.variant == "encoder_decoder" ? 1 : 0;
  o.layer.d_model = c.heads * 8;
  o.layer.num_heads = c.heads;
  o.layer.dim_feedforward = 32;
  o.layer.attention.segment_lengths = c.w;
  o.layer.attention.dilation_rates = c.r;
  at::manual_seed(17);  // the same model and tokens on every rank
  LongNetLM model(o);
  model->to(at::kDouble);
  model->eval();
  const int64_t B = int64_t(c.prompts.size());
  const int64_t P = *std::max_element(c.prompts.begin(), c.prompts.end());
  auto tokens = at::randint(o.vocab_size, {B, P + c.steps}, at::kLong);
  IncrementalOptions io;
  io.prefill_chunk = c.chunk;
  IncrementalLM one(model, B, io), split(model, B, io);
  auto want = one.prefill(tokens.narrow(1, 0, P), c.prompts);
  auto got = prefill_parallel(split, tokens.narrow(1, 0, P), c.prompts, *grid->world);
  EXPECT_LT(rel_error(got, want), 1e-12) << "logits after the prompts";
  EXPECT_TRUE(at::equal(split.positions(), one.positions()));
  for (int64_t s = 0; s < c.steps; ++s) {
    auto next = at::empty({B}, at::kLong);
    for (int64_t b = 0; b < B; ++b) next[b] = tokens[b][c.prompts[b] + s];
    EXPECT_LT(rel_error(split.step(next), one.step(next)), 1e-12) << "step " << s;
  }
}

TEST(ParallelPrefill, BlocksSplitEvenlyAndCoverThePrompt) {
  // 5 blocks over 4 ranks, 1 block over 3 (two ranks run nothing), an empty prompt range.
  EXPECT_EQ(prefill_blocks(150, 32, 0, 4), std::make_pair(int64_t(0), int64_t(1)));
  EXPECT_EQ(prefill_blocks(150, 32, 3, 4), std::make_pair(int64_t(3), int64_t(5)));
  EXPECT_EQ(prefill_blocks(20, 32, 1, 3), std::make_pair(int64_t(0), int64_t(0)));
  EXPECT_EQ(prefill_blocks(20, 32, 2, 3), std::make_pair(int64_t(0), int64_t(1)));
  for (int ranks : {1, 2, 3, 4, 7})
    for (int64_t P : {1, 31, 32, 33, 150, 1000}) {
      int64_t next = 0;
      for (int k = 0; k < ranks; ++k) {
        auto [f, l] = prefill_blocks(P, 32, k, ranks);
        EXPECT_EQ(f, next);
        EXPECT_LE(f, l);
        next = l;
      }
      EXPECT_EQ(next, (P + 31) / 32);
    }
}

TEST(ParallelPrefill, MatchesOneRank_promptsOnAndOffBlockBoundaries) {
  // Block 32: lengths on a boundary, one past it, mid-block and shorter than a block; chunks of
  // one block inside each rank's range.
  expect_split_prefill_matches(
      {"decoder_only", {8, 16, 32}, {1, 2, 4}, 4, {150, 32, 33, 1, 97, 64}, 32, 40});
}

TEST(ParallelPrefill, MatchesOneRank_rNotDividingW_headsPerClass) {
  expect_split_prefill_matches({"decoder_only", {6, 12, 24}, {1, 5, 7}, 8, {100, 71}, 48, 30});
}

TEST(ParallelPrefill, MatchesOneRank_promptShorterThanOneBlock) {
  // One block in all: every rank but rank 0 (of several) runs nothing.
  expect_split_prefill_matches({"decoder_only", {8, 16, 32}, {1, 2, 4}, 4, {3, 20}, 32, 20});
}

TEST(ParallelPrefill, MatchesOneRank_encoderDecoder) {
  expect_split_prefill_matches({"encoder_decoder", {8, 16}, {1, 2}, 2, {50, 17, 16}, 16, 20});
}

}  // namespace
}  // namespace longnet
