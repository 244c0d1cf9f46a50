// `longnet bench generate`: generation speed after long prompts. Per prompt length: the prefill
// of one prompt (chunked) is timed; then every batch size continues from that prompt's state
// (IncrementalLM::state_from: the cache contents, not their values, set the cost) and times its
// steps: per-token latency with the sampled token read back each step (as `longnet generate`
// runs), the device time per step queued back to back, tokens/s, the peak memory while stepping,
// and beside each the memory-bandwidth bound: the bytes a step must read (every weight once, the
// cached k and v rows its queries attend to) over the card's bandwidth. The rows read depend on
// where the step falls in the segments' cycle (few right after a multiple of the longest segment,
// the most just before one): each row also gives the bound over the steps ending at the last
// position of a cycle (every segment full) and the cache fill (cache bytes read / there);
// --cache-fill full times the steps there. --trace keeps a Kineto trace of a few more steps of
// each measurement (kernels and their gaps: what a step's time is made of).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#endif

#include "longnet/cli/bench_common.h"
#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/core/file_util.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/step_profile.h"

namespace longnet {
namespace {

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

// The period of the segments' cycle: the least common multiple of the segment lengths (at
// position cycle - 1 every branch's segment is full). Throws when it exceeds 2^50.
int64_t segment_cycle(const std::vector<int64_t>& segment_lengths) {
  int64_t l = 1;
  for (int64_t w : segment_lengths) {
    const int64_t g = std::gcd(l, w);
    if (l / g > (int64_t(1) << 50) / w)
      throw std::invalid_argument(
          "bench generate: the segment lengths' least common multiple exceeds 2^50; "
          "--cache-fill full needs segment lengths with a reachable common multiple (e.g. powers "
          "of two)");
    l = l / g * w;
  }
  return l;
}

// Steps traced per measurement with --trace.
constexpr int64_t kTraceSteps = 8;

}  // namespace

int cmd_bench_generate(const Args& args) {
  CliFlags f("bench generate");
  flags_bench_generate(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  f.no_positional();
  single_rank_require("bench generate");
  bench_results_path_check(f.get("json"), "longnet bench generate --json");
  if (!f.get("json").empty())
    output_not_input(f.get("json"), {f.get("checkpoint"), f.get("config")},
                     "longnet bench generate --json");
  const std::string trace_dir = f.get("trace");
  if (!trace_dir.empty()) output_dir_prepare(trace_dir, "longnet bench generate --trace");
  const auto device = device_auto(f.get("device"));
  const auto dtype = dtype_from_name(f.get("dtype"));
  const int64_t seed = f.get_int("seed"), steps = f.get_int("steps"), warmup = f.get_int("warmup");
  const double bandwidth = f.get_double("bandwidth");
  // (--steps >= 1 and --warmup >= 2 are the flags' ranges, checked as they are read)
  const std::string fill_mode = f.get("cache-fill");
  if (fill_mode != "prompt" && fill_mode != "full")
    throw std::invalid_argument("bench generate --cache-fill: '" + fill_mode +
                                "' is not one of prompt, full");
  // Their ranges, checked as they are read: before the model is loaded.
  for (const char* flag : {"prompt-lens", "batches"}) (void)f.get_int_list(flag);
  if (!device.is_cuda() && !f.given("bandwidth"))
    log_info("bench generate: note: the bound (of_bound) uses --bandwidth " + f.get("bandwidth") +
             " B/s, an H200's; on the CPU give this machine's memory bandwidth for a meaningful "
             "fraction");
  auto loaded = model_load(model_flags_get(f, device, dtype, seed));
  const auto& m = loaded.config.model;
  const auto& segments = m.layer.attention.segment_lengths;
  // The period of the segments: at its last position every branch's segment is full (the
  // longest segment when the lengths are powers of two).
  int64_t cycle = 0;
  if (fill_mode == "full") {
    cycle = segment_cycle(segments);
  } else {
    try {
      cycle = segment_cycle(segments);
    } catch (const std::invalid_argument&) {
      cycle = *std::max_element(segments.begin(), segments.end());  // an approximation
    }
  }
  step_flags_note(f, device);
  IncrementalOptions io = step_flags_get(f);
  io.prefill_chunk = f.get_int("prefill-chunk");
  const std::string card = bench_device_name(device);
  log_info("bench generate: " + loaded.source + ", " + std::to_string(m.num_layers) +
           " layers, d_model " + std::to_string(m.layer.d_model) + ", " + c10::toString(dtype) +
           " on " + card + (io.cuda_graph && device.is_cuda() ? ", CUDA graph" : ""));
  std::ostringstream table;
  table << "  prompt    batch  prefill_s  ms/token  device_ms  tokens/s    bound_tok/s  of_bound"
           "  cache_fill  full_bound_tok/s  state_GiB  peak_GiB  step\n";
  std::vector<JsonLine> rows;
  at::NoGradGuard no_grad;
  auto prompt_len = [&](int64_t P) {
    if (fill_mode != "full") return P;
    // The device-timed steps (after warmup and the per-token steps; the traced steps come
    // after them) end at position cycle - 1 (mod cycle): P = -(warmup + 2 steps) (mod cycle),
    // the least such P >= the requested one.
    const int64_t want = ((-(warmup + 2 * steps)) % cycle + cycle) % cycle;
    return P + ((want - P) % cycle + cycle) % cycle;
  };
  auto trace_file = [&](int64_t P, int64_t B) {
    return trace_dir + "/generate_p" + std::to_string(P) + "_b" + std::to_string(B) + ".json";
  };
  // Every trace file is checked before any work: only an earlier trace is written over.
  // (and none of them is the --json results file, which the trace would replace first)
  if (!trace_dir.empty())
    for (int64_t P : f.get_int_list("prompt-lens"))
      for (int64_t B : f.get_int_list("batches")) {
        const std::string t = trace_file(prompt_len(P), B);
        if (!f.get("json").empty() && path_resolve(t) == path_resolve(f.get("json")))
          throw std::invalid_argument(
              "longnet bench generate: --json '" + f.get("json") +
              "' is the --trace file of prompt " + std::to_string(prompt_len(P)) + ", batch " +
              std::to_string(B) + "; give the results a path outside --trace's folder");
        output_file_prepare(t, "longnet bench generate --trace file", OutputContent::kTrace);
      }
  // Every (prompt, batch) pair checked against the memory before anything is measured.
  for (int64_t P : f.get_int_list("prompt-lens"))
    for (int64_t B : f.get_int_list("batches"))
      generation_memory_check(loaded.model, B, 1, prompt_len(P), io.prefill_chunk, device,
                              "bench generate");  // (one prompt is prefilled, then copied)
  for (int64_t P : f.get_int_list("prompt-lens")) {
    P = prompt_len(P);
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
      // The same at the costliest position, and how full the cache reads were against it.
      const double weight_bytes = double(inc.step_bytes_read({}));  // no cache rows
      // Over as many positions, ending at the last of a cycle (what --cache-fill full times).
      double full_bytes = 0;
      for (int64_t i = 0; i < steps; ++i) {
        const int64_t pos = ((cycle - steps + i) % cycle + cycle) % cycle;
        full_bytes += double(inc.step_bytes_read(std::vector<int64_t>(B, pos)));
      }
      full_bytes /= double(steps);
      const double fill =
          full_bytes > weight_bytes ? (bytes - weight_bytes) / (full_bytes - weight_bytes) : 1.0;
      const double full_bound_tps = double(B) / (full_bytes / bandwidth);
      const double tps = double(B) / (ms / 1e3);
      const double dev_tps = double(B) / (dev_ms / 1e3);
      const double state_gib = double(inc.state_bytes()) / double(1ull << 30);
      const double peak = bench_peak_gib(device);
      // The traced steps run after the timed ones, so the timed steps are the same with or
      // without --trace (right after the prompt, or ending at the cycle's last position).
      if (!trace_dir.empty()) {
        StepTrace trace(trace_file(P, B), device, 0, kTraceSteps);
        for (int64_t i = 0; i < kTraceSteps; ++i) {
          trace.at_step(i);
          next = inc.step(next).argmax(-1);
        }
        trace.at_step(kTraceSteps);
      }
      table << std::setw(9) << P << std::setw(7) << B << std::fixed << std::setprecision(3)
            << std::setw(10) << prefill_s << std::setw(10) << ms << std::setw(10) << dev_ms
            << std::setprecision(0) << std::setw(11) << tps << std::setw(14) << bound_tps
            << std::setprecision(2) << std::setw(9) << dev_tps / bound_tps << std::setw(12) << fill
            << std::setprecision(0) << std::setw(18) << full_bound_tps << std::setprecision(3)
            << std::setw(11) << state_gib << std::setw(10) << peak << "  "
            << (inc.fused_step() ? "fused" : "ops") << (io.one_pass_attention ? "" : ", 3-pass")
            << "\n"
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
          .add("cache_fill", fill)
          .add("full_cache_bytes_per_step", full_bytes)
          .add("full_cache_bound_tokens_per_s", full_bound_tps)
          .add("state_gib", state_gib)
          .add("cache_gib", double(inc.cache_bytes()) / double(1ull << 30))
          .add("peak_gib", peak)
          .add("position", pos0[0].item<int64_t>())
          .add("fused_step", inc.fused_step())
          .add("one_pass_attention", io.one_pass_attention);
      rows.push_back(j);
    }
  }
  log_info(
      "bench generate: prefill of one prompt (batch 1); steps continue it for each batch; "
      "ms/token reads the token back each step, device_ms queues steps back to back; bound = "
      "bytes per step / " +
      [&] {
        char b[32];
        std::snprintf(b, sizeof(b), "%.4g", bandwidth);  // "4.8e+12", not 4800000000000.000000
        return std::string(b);
      }() +
      " B/s; of_bound from device_ms\n" + table.str());
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
        .add("cache_fill_mode", fill_mode)
        .add("segment_cycle", cycle)
        .add("steps", steps);
    bench_write_results(f.get("json"), command_line("bench generate", args), card, extra, rows);
    log_info("bench generate: results " + f.get("json"));
  }
  return 0;
}

}  // namespace longnet
