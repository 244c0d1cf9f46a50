// AdamW against a float64 reference written here and against torch.optim.AdamW's own numbers
// (computed by Python in the test), on the CPU and (when present) the GPU's fused kernel; and the
// bucketed gradient all-reduce on 1, 2 and 4 ranks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "longnet/parallel/grad_sync.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/tests/temp_files.h"
#include "longnet/train/adamw.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/config.h"
#include "longnet/train/train_state.h"

namespace longnet {
namespace {

// ---- AdamW -----------------------------------------------------------------------------------

constexpr double kLr = 1e-2, kBeta1 = 0.9, kBeta2 = 0.98, kEps = 1e-8;
constexpr int kSteps = 6;

// Deterministic values the Python side recomputes the same way: parameter p (17 elements) of
// group g, and its gradient at step t.
at::Tensor param_init(int p) {
  return at::arange(17, at::kDouble).mul(0.37 + 0.11 * p).sin();
}
at::Tensor grad_at(int p, int t) {
  return at::arange(17, at::kDouble).mul(0.23 + 0.07 * p).add(0.5 * t).cos().mul(1.0 + t);
}

// Two groups (weight decay 0.1 and 0) of two parameters each, after kSteps AdamW steps: a plain
// float64 transcription of torch.optim.AdamW's update.
std::vector<at::Tensor> adamw_reference() {
  std::vector<at::Tensor> out;
  for (int p = 0; p < 4; ++p) {
    const double wd = p < 2 ? 0.1 : 0.0;
    auto x = param_init(p), m = at::zeros_like(x), v = at::zeros_like(x);
    for (int t = 1; t <= kSteps; ++t) {
      auto g = grad_at(p, t);
      x.mul_(1 - kLr * wd);
      m = kBeta1 * m + (1 - kBeta1) * g;
      v = kBeta2 * v + (1 - kBeta2) * g * g;
      const double bc1 = 1 - std::pow(kBeta1, t), bc2 = 1 - std::pow(kBeta2, t);
      x -= kLr / bc1 * m / (v.sqrt() / std::sqrt(bc2) + kEps);
    }
    out.push_back(x);
  }
  return out;
}

// Runs longnet's AdamW on `device` in float32; a step whose index is in skipped is skipped.
std::vector<at::Tensor> adamw_ours(const at::Device& device, const std::vector<int>& skipped) {
  std::vector<at::Tensor> params;
  auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  for (int p = 0; p < 4; ++p) params.push_back(param_init(p).to(opts).requires_grad_());
  AdamW opt({{{params[0], params[1]}, 0.1}, {{params[2], params[3]}, 0.0}}, kBeta1, kBeta2, kEps);
  int t = 0;
  for (int step = 0; step < kSteps + int(skipped.size()); ++step) {
    const bool skip = std::find(skipped.begin(), skipped.end(), step) != skipped.end();
    if (!skip) ++t;
    for (int p = 0; p < 4; ++p)
      params[p].mutable_grad() =
          skip ? at::full({17}, NAN, opts) : grad_at(p, t).to(opts);  // a skipped step's grads
    opt.step(kLr, at::full({}, skip ? 1.0f : 0.0f, opts));
  }
  std::vector<at::Tensor> out;
  for (auto& p : params) out.push_back(p.detach().to(at::kDouble).cpu());
  return out;
}

double max_rel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(AdamW, CpuMatchesFloat64Reference_2Groups6Steps) {
  const auto ref = adamw_reference(), got = adamw_ours(at::kCPU, {});
  for (int p = 0; p < 4; ++p) EXPECT_LT(max_rel(got[p], ref[p]), 2e-6) << "parameter " << p;
}

TEST(AdamW, SkippedStepsChangeNothing) {
  const auto ref = adamw_ours(at::kCPU, {}), got = adamw_ours(at::kCPU, {0, 3, 7});
  for (int p = 0; p < 4; ++p) EXPECT_TRUE(at::equal(got[p], ref[p])) << "parameter " << p;
}

TEST(AdamW, CudaFusedMatchesFloat64Reference_2Groups6Steps) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU on this machine";
  const auto ref = adamw_reference();
  for (const auto& got : {adamw_ours(at::kCUDA, {}), adamw_ours(at::kCUDA, {1, 4})})
    for (int p = 0; p < 4; ++p) EXPECT_LT(max_rel(got[p], ref[p]), 2e-6) << "parameter " << p;
}

// torch.optim.AdamW's own result for the same inputs, by Python (LONGNET_TEST_PYTHON).
TEST(AdamW, MatchesTorchOptimAdamW) {
  const std::string python = LONGNET_TEST_PYTHON;
  if (python.empty()) GTEST_SKIP() << "no LONGNET_PYTHON configured";
  char dir_template[] = "/tmp/longnet_adamw_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  {
    std::ofstream script(dir + "/adamw.py");
    script << "import sys\n"
              "try:\n"
              "    import torch\n"
              "except ImportError:\n"
              "    sys.exit(77)\n"
              "ps = [torch.arange(17, dtype=torch.float64).mul(0.37 + 0.11 * p).sin()"
              ".requires_grad_() for p in range(4)]\n"
              "opt = torch.optim.AdamW([{'params': ps[:2], 'weight_decay': 0.1},\n"
              "                         {'params': ps[2:], 'weight_decay': 0.0}],\n"
              "                        lr=1e-2, betas=(0.9, 0.98), eps=1e-8)\n"
              "for t in range(1, 7):\n"
              "    for p, x in enumerate(ps):\n"
              "        x.grad = torch.arange(17, dtype=torch.float64).mul(0.23 + 0.07 * p)"
              ".add(0.5 * t).cos().mul(1.0 + t)\n"
              "    opt.step()\n"
              "with open(sys.argv[1], 'w') as f:\n"
              "    for x in ps:\n"
              "        f.write(' '.join(repr(v) for v in x.detach().tolist()) + '\\n')\n";
  }
  const int status = std::system((python + " " + dir + "/adamw.py " + dir + "/out.txt").c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 77) GTEST_SKIP() << python << " has no torch";
  ASSERT_EQ(rc, 0) << "the Python reference failed";
  std::ifstream in(dir + "/out.txt");
  const auto ours = adamw_ours(at::kCPU, {});
  for (int p = 0; p < 4; ++p) {
    std::string line;
    ASSERT_TRUE(std::getline(in, line)) << "no line for parameter " << p;
    std::istringstream values(line);
    std::vector<double> torch_values;
    for (double v; values >> v;) torch_values.push_back(v);
    ASSERT_EQ(torch_values.size(), 17u);
    auto expected = at::tensor(torch_values, at::kDouble);
    EXPECT_LT(max_rel(ours[p], expected), 2e-6) << "parameter " << p;
    EXPECT_LT(max_rel(adamw_reference()[p], expected), 1e-12) << "the float64 reference, " << p;
  }
  std::system(("rm -rf " + dir).c_str());
}

// ---- bucketed gradient all-reduce ------------------------------------------------------------

// Every rank's gradient of parameter i is rank-dependent; after the all-reduce each holds the
// mean over the ranks, for buckets smaller than one tensor, of a few tensors and of everything.
TEST(GradSync, MeanOverTheWorld_AnyBucketSize) {
  auto grid = process_grid_create(0, 1, c10::kCPU);
  const int world = grid->world_size, rank = grid->world_rank;
  const std::vector<int64_t> sizes = {5, 1, 300, 17, 64, 2};
  for (int64_t bucket : {int64_t(1), int64_t(20), int64_t(70), int64_t(1) << 20}) {
    SCOPED_TRACE("bucket " + std::to_string(bucket));
    std::vector<at::Tensor> params;
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto p = at::zeros({sizes[i]}, at::kFloat).requires_grad_();
      if (i != 3)  // parameter 3 has no gradient (on every rank): skipped
        p.mutable_grad() = at::arange(sizes[i], at::kFloat).add(1000.0 * rank + i);
      params.push_back(p);
    }
    grads_all_reduce(params, *grid->world, bucket);
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (i == 3) {
        EXPECT_FALSE(params[i].grad().defined());
        continue;
      }
      // mean over ranks of arange + 1000 r + i = arange + i + 1000 (world - 1) / 2
      auto expected = at::arange(sizes[i], at::kFloat).add(i + 1000.0 * (world - 1) / 2.0);
      EXPECT_TRUE(at::allclose(params[i].grad(), expected, 1e-6, 1e-4)) << "parameter " << i;
    }
  }
}

TEST(GradSync, BadBucketSizeIsAnError) {
  auto grid = process_grid_create(0, 1, c10::kCPU);
  std::vector<at::Tensor> none;
  EXPECT_THROW(grads_all_reduce(none, *grid->world, 0), c10::Error);
}

// ---- resume from a checkpoint not written by longnet ------------------------------------------

// A checkpoint whose checksum holds but whose entries have other types than `longnet train`
// writes (made by another tool): resuming names the file and the mismatch, not a LibTorch
// internal assertion.
TEST(TrainState, ResumeNamesEntriesOfAnotherType) {
  auto grid = process_grid_create(0, 1, c10::kCPU);
  testing::TempDir dir("forged");
  for (const bool int_format : {true, false}) {
    c10::impl::GenericDict state(c10::StringType::get(), c10::AnyType::get());
    if (int_format) {
      state.insert("format", int64_t{7});  // a string in ours
    } else {
      state.insert("format", std::string("longnet-train-1"));
      state.insert("config", at::zeros({3}));  // YAML text in ours
    }
    const int64_t step = int_format ? 3 : 4;
    checkpoint_write(dir.path(), step, state, 10);
    TrainConfig cfg;
    cfg.checkpoint.dir = dir.path();
    cfg.checkpoint.resume = checkpoint_path(dir.path(), step);
    NamedTensors params;
    AdamW optim({}, 0.9, 0.98, 1e-8);
    std::string message;
    try {
      train_state_resume(*grid, cfg, params, optim);
    } catch (const std::exception& e) {
      message = e.what();
    }
    SCOPED_TRACE(message);
    EXPECT_NE(message.find(cfg.checkpoint.resume), std::string::npos);
    EXPECT_EQ(message.find("INTERNAL ASSERT"), std::string::npos);
    if (int_format) {
      EXPECT_NE(message.find("another type"), std::string::npos);
    }
    EXPECT_NE(message.find("not written by `longnet train`"), std::string::npos);
  }
}

}  // namespace
}  // namespace longnet
