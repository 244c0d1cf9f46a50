// `longnet check generate`: a randomly initialised model from a config's `model:` section, its
// full-forward logits against teacher-forced incremental logits (prefill, then one token per
// step, core/incremental_lm.h) at every position of a batch of sequences with different prompt
// lengths. Prints the worst per-position relative error and PASS or FAIL. For 16-bit dtypes the
// reference is the float32 forward, and the incremental error may be at most twice the full
// 16-bit forward's (the project's rule for low precision).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/core/device_memory.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/config.h"

namespace longnet {
namespace {

// Worst relative error over the rows of (B, N, V), each against ref's row.
double worst_row_error(const at::Tensor& a, const at::Tensor& ref) {
  auto d = a.to(at::kDouble), r = ref.to(at::kDouble);
  return ((d - r).norm(2, -1) / r.norm(2, -1).clamp_min(1e-300)).max().item<double>();
}

LongNetLM copy_of(LongNetLM src, const LongNetLMOptions& o, c10::Device device,
                  c10::ScalarType dtype) {
  LongNetLM m(o);
  m->eval();
  at::NoGradGuard no_grad;
  auto from = src->named_parameters();
  for (auto& p : m->named_parameters()) p.value().copy_(from[p.key()].cpu());
  m->to(device, dtype);
  return m;
}

}  // namespace

int cmd_check_generate(const Args& args) {
  CliFlags f("check generate");
  flags_check_generate(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  single_rank_require("check generate");
  if (f.get("config").empty()) throw std::invalid_argument("check generate: --config is required");
  std::vector<std::string> overrides;  // key=value, as `longnet train` takes them
  for (const auto& a : f.positional()) {
    if (a.find('=') == std::string::npos)
      throw std::invalid_argument("check generate: unexpected argument '" + a +
                                  "' (overrides are key=value, e.g. model.num_layers=2)");
    overrides.push_back(a);
  }
  overrides_unique_check(overrides, "check generate");
  auto cfg = config_load(f.get("config"), overrides);
  const int64_t W = generation_block_check(cfg.model.layer.attention);
  const auto device = device_auto(f.get("device"));
  const auto dtype = dtype_from_name(f.get("dtype"));
  const int64_t N = f.get_int("seq-len") > 0 ? f.get_int("seq-len") : cfg.data.seq_len;
  const int64_t B = f.get_int("batch");
  const int64_t P0 = f.get_int("prompt-len") > 0 ? f.get_int("prompt-len") : N / 2 + 1;
  if (f.get_int("prompt-len") <= 0 && N < 3)
    throw std::invalid_argument("check generate: --seq-len " + std::to_string(N) +
                                " is too short: the default prompt of N/2 + 1 tokens leaves no "
                                "step to generate; use --seq-len 3 or more");
  if (B < 1 || N < 2 || P0 < 1 || P0 >= N)
    throw std::invalid_argument(
        "check generate: need --batch >= 1 and 1 <= --prompt-len < "
        "--seq-len (got batch " +
        std::to_string(B) + ", prompt " + std::to_string(P0) + ", N " + std::to_string(N) + ")");
  std::vector<int64_t> prompts;
  for (int64_t b = 0; b < B; ++b) prompts.push_back(std::max<int64_t>(1, P0 - P0 * b / (3 * B)));
  const int64_t P_max = *std::max_element(prompts.begin(), prompts.end());
  const int64_t P_min = *std::min_element(prompts.begin(), prompts.end());
  const int64_t steps = N - P_min, total = N + (P_max - P_min);
  {
    // Logits of every position, full and incremental (float32 or float64), one layer's
    // activations of the full forward (q, k, v, output, FFN) and the caches: a lower bound of
    // what the check allocates, refused up front when the device cannot hold it.
    const auto& L = cfg.model.layer;
    const double width = double(cfg.model.vocab_size) + 4.0 * double(L.d_model) +
                         double(L.dim_feedforward),
                 es = dtype == at::kDouble ? 8 : 4;
    const int64_t cache = IncrementalLM::cache_bytes_for(cfg.model, B, es);
    device_memory_check(
        double(B) *
                (double(total) + 1 +
                 double(N) * (dtype == at::kBFloat16 || dtype == at::kHalf ? 2 : 1)) *
                width * es +
            (cache < 0 ? INFINITY : double(cache)),
        device,
        "check generate: --batch " + std::to_string(B) + " x --seq-len " + std::to_string(N) +
            " with vocab_size " + std::to_string(cfg.model.vocab_size),
        "use a smaller --seq-len or --batch");
  }

  at::manual_seed(static_cast<uint64_t>(f.get_int("seed")));
  LongNetLM init(cfg.model);
  init->eval();
  const bool low = dtype == at::kBFloat16 || dtype == at::kHalf;
  auto model = copy_of(init, cfg.model, device, dtype);
  auto tokens = at::randint(cfg.model.vocab_size, {B, total}, at::kLong).to(device);

  at::NoGradGuard no_grad;
  // The reference: the full forward (float32 for 16-bit runs), and the naive 16-bit forward.
  at::Tensor ref, naive;
  {
    auto head = tokens.narrow(1, 0, N);
    if (low) {
      ref = copy_of(init, cfg.model, device, at::kFloat)->forward(head);
      naive = model->forward(head);
    } else {
      ref = model->forward(head);
    }
  }
  step_flags_note(f, device);
  IncrementalOptions io = step_flags_get(f);
  io.prefill_chunk = f.get_int("prefill-chunk") > 0 ? f.get_int("prefill-chunk") : 2 * W;
  IncrementalLM inc(model, B, io);
  // Incremental logits at every position a sequence reaches (rows past N are dropped).
  const auto out_dtype = dtype == at::kDouble ? at::kDouble : at::kFloat;
  auto got = at::zeros({B, total + 1, cfg.model.vocab_size}, ref.options().dtype(out_dtype));
  at::Tensor prefill_logits;
  auto t0 = std::chrono::steady_clock::now();
  inc.prefill(tokens.narrow(1, 0, P_max), prompts, &prefill_logits);
  for (int64_t b = 0; b < B; ++b)
    got[b].narrow(0, 0, prompts[b]).copy_(prefill_logits[b].narrow(0, 0, prompts[b]));
  auto rows = at::arange(B, tokens.options());
  for (int64_t s = 0; s < steps; ++s) {
    auto pos = inc.positions().clone();
    auto next = tokens.gather(1, pos.clamp_max(total - 1).view({B, 1})).view({B});
    got.index_put_({rows, pos.clamp_max(total)}, inc.step(next).to(out_dtype));
  }
  got = got.narrow(1, 0, N);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double err = worst_row_error(got, ref);
  const double naive_err = low ? worst_row_error(naive, ref) : 0;
  const double tol = low ? 2 * naive_err : dtype == at::kDouble ? 1e-9 : 1e-4;
  std::ostringstream s;
  s << "check generate: " << cfg.model.variant << ", " << cfg.model.num_layers
    << " layers, d_model " << cfg.model.layer.d_model << ", " << cfg.model.layer.num_heads
    << " heads, w " << cfg.model.layer.attention.segment_lengths.size() << " branches up to " << W
    << "; N=" << N << " B=" << B << " prompts";
  for (auto p : prompts) s << " " << p;
  s << ", prefill chunk " << io.prefill_chunk << ", " << steps << " steps, dtype " << dtype
    << ", device " << device << "\n  worst relative error of the logits per position vs the full "
    << (low ? "float32 " : "") << "forward: " << err;
  if (low) s << " (the full " << dtype << " forward's: " << naive_err << ")";
  s << ", tolerance " << tol << "\n  cache " << inc.cache_bytes() << " bytes, generator state "
    << inc.state_bytes() << " bytes; prefill + steps " << seconds << " s\n  "
    << (err <= tol ? "PASS" : "FAIL");
  log_info(s.str());
  return err <= tol ? 0 : 1;
}

}  // namespace longnet
