// The chunked output layer and loss (core/chunked_cross_entropy.h) against the plain path
// `cross_entropy(linear(h, W, b).float(), t)`: loss and the gradients of hidden, weight and bias,
// on random inputs of odd sizes, every chunking (1 row, uneven, exact, larger than the rows),
// mean and sum, with and without bias; float64 to rounding, float32, and bfloat16 on a GPU
// within twice the plain bfloat16 path's own error against float64. Also LongNetLM's
// forward_hidden with `out` equals its forward.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <tuple>
#include <vector>

#include "longnet/core/chunked_cross_entropy.h"
#include "longnet/core/longnet_model.h"
#include "longnet/tests/dilated_reference.h"

namespace longnet {
namespace {

using testing::rel_error;

struct Result {
  at::Tensor loss, gh, gw, gb;
};

// Loss and gradients of one path on copies of the inputs.
template <typename Fn>
Result run(Fn fn, const at::Tensor& h, const at::Tensor& w, const at::Tensor& b,
           const at::Tensor& t, const ChunkedCrossEntropyOptions& o) {
  auto hh = h.detach().clone().requires_grad_(true);
  auto ww = w.detach().clone().requires_grad_(true);
  auto bb = b.defined() ? b.detach().clone().requires_grad_(true) : at::Tensor();
  auto loss = fn(hh, ww, bb, t, o);
  loss.backward();
  return {loss.detach(), hh.grad(), ww.grad(), bb.defined() ? bb.grad() : at::Tensor()};
}

void compare(const Result& a, const Result& b, double tol) {
  EXPECT_LT(rel_error(a.loss, b.loss), tol);
  EXPECT_LT(rel_error(a.gh, b.gh), tol);
  EXPECT_LT(rel_error(a.gw, b.gw), tol);
  if (a.gb.defined() || b.gb.defined()) {
    EXPECT_LT(rel_error(a.gb, b.gb), tol);
  }
}

class ChunkedLoss : public ::testing::TestWithParam<std::tuple<int64_t, bool, bool>> {};

TEST_P(ChunkedLoss, MatchesPlainFloat64AndFloat32) {
  const auto [chunk, sum, with_bias] = GetParam();
  at::manual_seed(17);
  const int64_t B = 3, N = 37, d = 17, V = 1000;
  for (auto dtype : {at::kDouble, at::kFloat}) {
    auto opts = at::TensorOptions().dtype(dtype);
    auto h = at::randn({B, N, d}, opts);
    auto w = at::randn({V, d}, opts) / 4;
    auto b = with_bias ? at::randn({V}, opts) : at::Tensor();
    auto t = at::randint(0, V, {B, N}, at::kLong);
    ChunkedCrossEntropyOptions o;
    o.chunk_rows = chunk;
    o.sum = sum;
    const Result plain = run(linear_cross_entropy_plain, h, w, b, t, o);
    const Result chunked = run(linear_cross_entropy_chunked, h, w, b, t, o);
    EXPECT_EQ(chunked.loss.scalar_type(), dtype == at::kDouble ? at::kDouble : at::kFloat);
    EXPECT_EQ(chunked.gh.scalar_type(), dtype);
    EXPECT_EQ(chunked.gw.scalar_type(), dtype);
    compare(chunked, plain, dtype == at::kDouble ? 1e-12 : 2e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(Chunks, ChunkedLoss,
                         ::testing::Combine(::testing::Values(1, 7, 37, 111, 1000),
                                            ::testing::Bool(), ::testing::Bool()));

TEST(ChunkedLossOnly, GradientOfHiddenOnly_And_ComputeDtypeFloat32FromFloat64Inputs) {
  at::manual_seed(3);
  auto h = at::randn({127, 9}, at::kDouble).requires_grad_(true);
  auto w = at::randn({300, 9}, at::kDouble);  // no gradient wanted
  auto t = at::randint(0, 300, {127}, at::kLong);
  ChunkedCrossEntropyOptions o;
  o.chunk_rows = 10;
  auto loss = linear_cross_entropy_chunked(h, w, at::Tensor(), t, o);
  loss.backward();
  auto h2 = h.detach().clone().requires_grad_(true);
  linear_cross_entropy_plain(h2, w, at::Tensor(), t, o).backward();
  EXPECT_LT(rel_error(h.grad(), h2.grad()), 1e-12);
  // Logits in float32 from float64 parameters (as autocast computes a float32 master's layer in
  // 16 bits): loss float32, gradients in the inputs' dtypes.
  o.compute_dtype = at::kFloat;
  auto w3 = w.clone().requires_grad_(true);
  auto l3 = linear_cross_entropy_chunked(h2.detach(), w3, at::Tensor(), t, o);
  EXPECT_EQ(l3.scalar_type(), at::kFloat);
  l3.backward();
  EXPECT_EQ(w3.grad().scalar_type(), at::kDouble);
  EXPECT_LT(rel_error(l3, loss.detach()), 1e-6);
}

TEST(ChunkedLossOnly, BadInputsNameTheProblem) {
  auto h = at::randn({4, 8});
  auto w = at::randn({10, 8});
  auto t = at::zeros({4}, at::kLong);
  auto fails = [](const std::function<void()>& f, const std::string& what) {
    try {
      f();
      ADD_FAILURE() << "no error, expected " << what;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  fails([&] { linear_cross_entropy_chunked(h, at::randn({10, 7}), {}, t); }, "(V, d) with d = 8");
  fails([&] { linear_cross_entropy_chunked(h, w, at::randn({9}), t); }, "bias must be (V)");
  fails([&] { linear_cross_entropy_chunked(h, w, {}, at::zeros({5}, at::kLong)); },
        "targets must be int64 of shape");
  ChunkedCrossEntropyOptions o;
  o.chunk_rows = 0;
  fails([&] { linear_cross_entropy_chunked(h, w, {}, t, o); }, "chunk_rows must be >= 1");
  EXPECT_EQ(cross_entropy_chunk_rows(100277), (int64_t{1} << 30) / (4 * 100277));
  EXPECT_EQ(cross_entropy_chunk_rows(int64_t{1} << 40), 1);
}

// bfloat16 on the GPU, large vocabulary: the chunked path's error against float64 at most about
// twice the plain bfloat16 path's.
TEST(ChunkedLossGpu, Bf16WithinTwiceThePlainErrorAtVocab100277) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(5);
  const int64_t R = 2000, d = 768, V = 100277;
  auto dev = at::TensorOptions().device(at::kCUDA);
  auto h = at::randn({R, d}, dev.dtype(at::kBFloat16));
  auto w = (at::randn({V, d}, dev) / 28).to(at::kFloat);
  auto b = at::randn({V}, dev) / 10;
  auto t = at::randint(0, V, {R}, dev.dtype(at::kLong));
  ChunkedCrossEntropyOptions o;
  o.chunk_rows = 333;
  o.compute_dtype = at::kBFloat16;
  const Result ref = run(linear_cross_entropy_plain, h.to(at::kDouble), w.to(at::kDouble),
                         b.to(at::kDouble), t, {});
  const Result plain = run(linear_cross_entropy_plain, h, w, b, t, o);
  const Result chunked = run(linear_cross_entropy_chunked, h, w, b, t, o);
  const double floor = 1e-3;  // below this both are at bfloat16's resolution
  for (auto [c, p, r] : std::vector<std::tuple<at::Tensor, at::Tensor, at::Tensor>>{
           {chunked.loss, plain.loss, ref.loss},
           {chunked.gh, plain.gh, ref.gh},
           {chunked.gw, plain.gw, ref.gw},
           {chunked.gb, plain.gb, ref.gb}})
    EXPECT_LE(rel_error(c, r), std::max(2 * rel_error(p, r), floor))
        << "chunked " << rel_error(c, r) << " plain " << rel_error(p, r);
}

// The chunked loss on the GPU in float32, through the row kernels of cross_entropy_kernel.h and
// through the ATen expressions, against float64 on the CPU: vocabularies below, at and above one
// block's threads, every chunking, mean and sum, with and without bias.
TEST(ChunkedLossGpu, Float32RowKernelsMatchFloat64) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  at::manual_seed(23);
  for (int64_t V : {1, 7, 512, 513, 5003}) {
    const int64_t R = 301, d = 24;
    auto h = at::randn({R, d}, at::kDouble);
    auto w = at::randn({V, d}, at::kDouble) / 3;
    auto b = at::randn({V}, at::kDouble);
    auto t = at::randint(0, V, {R}, at::kLong);
    for (int64_t chunk : {1, 97, 301, 4096})
      for (bool sum : {false, true})
        for (bool with_bias : {false, true})
          for (bool kernels : {true, false}) {
            ChunkedCrossEntropyOptions o;
            o.chunk_rows = chunk;
            o.sum = sum;
            o.row_kernels = kernels;
            auto bias = with_bias ? b : at::Tensor();
            const Result ref = run(linear_cross_entropy_plain, h, w, bias, t, o);
            auto cuda = [](const at::Tensor& x) {
              return x.defined()
                         ? x.to(at::kCUDA, x.is_floating_point() ? at::kFloat : x.scalar_type())
                         : x;
            };
            const Result got =
                run(linear_cross_entropy_chunked, cuda(h), cuda(w), cuda(bias), cuda(t), o);
            SCOPED_TRACE("V " + std::to_string(V) + " chunk " + std::to_string(chunk) +
                         (sum ? " sum" : " mean") + (with_bias ? " bias" : "") +
                         (kernels ? " row kernels" : " ATen"));
            compare({got.loss.cpu().to(at::kDouble), got.gh.cpu().to(at::kDouble),
                     got.gw.cpu().to(at::kDouble),
                     with_bias ? got.gb.cpu().to(at::kDouble) : at::Tensor()},
                    ref, 2e-5);
          }
  }
}

TEST(LongNetLM, ForwardHiddenThroughOutIsForward) {
  at::manual_seed(11);
  LongNetLMOptions o;
  o.vocab_size = 97;
  o.num_layers = 2;
  o.layer.d_model = 32;
  o.layer.num_heads = 4;
  o.layer.dim_feedforward = 64;
  o.layer.attention.segment_lengths = {8, 16};
  o.layer.attention.dilation_rates = {1, 2};
  LongNetLM lm(o);
  lm->eval();
  auto tokens = at::randint(0, 97, {2, 37}, at::kLong);
  auto logits = lm->forward(tokens);
  LocalAttention local;
  auto h = lm->forward_hidden(tokens, local);
  EXPECT_EQ(h.sizes(), (at::IntArrayRef{2, 37, 32}));
  EXPECT_TRUE(at::allclose(at::linear(h, lm->out->weight, lm->out->bias), logits, 1e-6, 1e-6));
  // And the chunked loss of the hidden states equals cross-entropy of the logits.
  auto t = at::randint(0, 97, {2, 37}, at::kLong);
  ChunkedCrossEntropyOptions co;
  co.chunk_rows = 5;
  auto a = linear_cross_entropy_chunked(h, lm->out->weight, lm->out->bias, t, co);
  auto b = at::cross_entropy_loss(logits.reshape({-1, 97}), t.reshape({-1}));
  EXPECT_NEAR(a.item<double>(), b.item<double>(), 1e-5);
}

}  // namespace
}  // namespace longnet
