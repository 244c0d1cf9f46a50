// `longnet bench generate`: generation speed after long prompts. Per prompt length: the prefill
// of one prompt (chunked) is timed; then every batch size continues from that prompt's state
// (IncrementalLM::state_from: the cache contents, not their values, set the cost) and times its
// steps: per-token latency with the sampled token read back each step (as `longnet generate`
// runs), the device time per step queued back to back, tokens/s, the peak memory while stepping,
// and beside each the memory-bandwidth bound: the bytes a step must read (every weight once, the
// cached k and v rows its queries attend to) over the card's bandwidth.
#include <ATen/ATen.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <sstream>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

#include "longnet/cli/bench_common.h"
#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/parallel/mpi_bootstrap.h"

namespace longnet {
namespace {

void device_sync(const c10::Device& d) {
#ifdef LONGNET_WITH_CUDA
  if (d.is_cuda()) at::cuda::getCurrentCUDAStream(d.index()).synchronize();
#endif
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Milliseconds per step of `steps` steps queued back to back (greedy, no host read): CUDA events
// on the GPU, the host clock (with a final sync) elsewhere.
double device_ms_per_step(IncrementalLM& inc, at::Tensor& next, int64_t steps,
                          const c10::Device& d) {
#ifdef LONGNET_WITH_CUDA
  if (d.is_cuda()) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    for (int64_t i = 0; i < steps; ++i) next = inc.step(next).argmax(-1);
    stop.record();
    stop.synchronize();
    return start.elapsed_time(stop) / double(steps);
  }
#endif
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) next = inc.step(next).argmax(-1);
  device_sync(d);
  return seconds_since(t0) * 1e3 / double(steps);
}

}  // namespace

int cmd_bench_generate(const Args& args) {
  CliFlags f("bench generate");
  flags_bench_generate(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  single_rank_require("bench generate");
  const auto device = device_auto(f.get("device"));
  const auto dtype = dtype_from_name(f.get("dtype"));
  const int64_t seed = f.get_int("seed"), steps = f.get_int("steps"), warmup = f.get_int("warmup");
  const double bandwidth = f.get_double("bandwidth");
  if (steps < 1 || warmup < 2)
    throw std::invalid_argument(
        "bench generate: --steps >= 1 and --warmup >= 2 (the graph is "
        "captured on the second step)");
  auto loaded = model_load(model_flags_get(f, device, dtype, seed));
  const auto& m = loaded.config.model;
  IncrementalOptions io;
  io.prefill_chunk = f.get_int("prefill-chunk");
  io.cuda_graph = !f.get_switch("no-cuda-graph");
  const std::string card = bench_device_name(device);
  log_info("bench generate: " + loaded.source + ", " + std::to_string(m.num_layers) +
           " layers, d_model " + std::to_string(m.layer.d_model) + ", " + c10::toString(dtype) +
           " on " + card + (io.cuda_graph && device.is_cuda() ? ", CUDA graph" : ""));
  std::ostringstream table;
  table << "  prompt    batch  prefill_s  ms/token  device_ms  tokens/s    bound_tok/s  of_bound"
           "  state_GiB  peak_GiB\n";
  std::vector<JsonLine> rows;
  at::NoGradGuard no_grad;
  for (int64_t P : f.get_int_list("prompt-lens")) {
    at::manual_seed(static_cast<uint64_t>(seed));
    auto prompt = at::randint(m.vocab_size, {1, P}, at::kLong);
    // The prefill of one prompt.
    bench_peak_reset(device);
    IncrementalLM one(loaded.model, 1, io);
    device_sync(device);
    auto t0 = std::chrono::steady_clock::now();
    auto first = one.prefill(prompt, {P}).argmax(-1);
    device_sync(device);
    const double prefill_s = seconds_since(t0);
    const double prefill_peak = bench_peak_gib(device);
    for (int64_t B : f.get_int_list("batches")) {
      bench_peak_reset(device);
      IncrementalLM inc(loaded.model, B, io);
      inc.state_from(one, 0);
      auto next = first.expand({B}).contiguous();
      for (int64_t i = 0; i < warmup; ++i) next = inc.step(next).argmax(-1);
      device_sync(device);
      // Per token with the host reading each sampled token, as generation runs.
      auto t1 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < steps; ++i) {
        next = inc.step(next).argmax(-1);
        (void)next.cpu();
      }
      const double ms = seconds_since(t1) * 1e3 / double(steps);
      const auto pos0 = inc.positions().cpu().clone();
      const double dev_ms = device_ms_per_step(inc, next, steps, device);
      // The bound at the positions the device-timed steps ran at (every sequence at the same one).
      double bytes = 0;
      for (int64_t i = 0; i < steps; ++i)
        bytes += double(inc.step_bytes_read(std::vector<int64_t>(B, pos0[0].item<int64_t>() + i)));
      bytes /= double(steps);
      const double bound_tps = double(B) / (bytes / bandwidth);
      const double tps = double(B) / (ms / 1e3);
      const double dev_tps = double(B) / (dev_ms / 1e3);
      const double state_gib = double(inc.state_bytes()) / double(1ull << 30);
      const double peak = bench_peak_gib(device);
      table << std::setw(9) << P << std::setw(7) << B << std::fixed << std::setprecision(3)
            << std::setw(10) << prefill_s << std::setw(10) << ms << std::setw(10) << dev_ms
            << std::setprecision(0) << std::setw(11) << tps << std::setw(14) << bound_tps
            << std::setprecision(2) << std::setw(9) << dev_tps / bound_tps << std::setprecision(3)
            << std::setw(11) << state_gib << std::setw(10) << peak << "\n"
            << std::defaultfloat;
      JsonLine j;
      j.add("prompt_len", P)
          .add("batch", B)
          .add("prefill_s", prefill_s)
          .add("prefill_tokens_per_s", double(P) / prefill_s)
          .add("prefill_peak_gib", prefill_peak)
          .add("ms_per_token", ms)
          .add("device_ms_per_step", dev_ms)
          .add("tokens_per_s", tps)
          .add("device_tokens_per_s", dev_tps)
          .add("bytes_per_step", bytes)
          .add("bound_tokens_per_s", bound_tps)
          .add("fraction_of_bound", dev_tps / bound_tps)
          .add("state_gib", state_gib)
          .add("cache_gib", double(inc.cache_bytes()) / double(1ull << 30))
          .add("peak_gib", peak)
          .add("position", pos0[0].item<int64_t>());
      rows.push_back(j);
    }
  }
  log_info(
      "bench generate: prefill of one prompt (batch 1); steps continue it for each batch; "
      "ms/token reads the token back each step, device_ms queues steps back to back; bound = "
      "bytes per step / " +
      std::to_string(bandwidth) + " B/s; of_bound from device_ms\n" + table.str());
  if (!f.get("json").empty()) {
    JsonLine extra;
    extra.add("model", loaded.source)
        .add("dtype", c10::toString(dtype))
        .add("layers", m.num_layers)
        .add("d_model", m.layer.d_model)
        .add("heads", m.layer.num_heads)
        .add("segment_lengths", bench_list_str(m.layer.attention.segment_lengths))
        .add("dilation_rates", bench_list_str(m.layer.attention.dilation_rates))
        .add("cuda_graph", io.cuda_graph && device.is_cuda())
        .add("bandwidth_bytes_per_s", bandwidth)
        .add("steps", steps);
    bench_write_results(f.get("json"), command_line("bench generate", args), card, extra, rows);
    log_info("bench generate: results " + f.get("json"));
  }
  return 0;
}

}  // namespace longnet
