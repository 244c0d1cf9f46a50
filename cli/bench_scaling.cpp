// Figure 5 of the paper (see bench_scaling.h): forward time against sequence length at a fixed
// number of tokens, dilated attention (sequence-parallel once a sequence outgrows one GPU) and
// dense SDPA, with peak memory and effective TFLOP/s per point.
#include "longnet/cli/bench_scaling.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "longnet/cli/bench_common.h"
#include "longnet/cli/common_flags.h"
#include "longnet/core/dilated_attention.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_parallel_attention.h"

namespace longnet {
namespace {

struct Schedule {
  std::vector<int64_t> w, r;
};

Schedule schedule_for(const std::string& kind, int64_t N, int64_t per_gpu) {
  std::vector<int64_t> w, r;
  if (kind == "reference") {
    for (int64_t s : {8192, 16384, 32768}) {
      const int64_t c = std::min(s, N);
      w.push_back(c);
      r.push_back(int64_t(1) << std::max<int64_t>(0, c / 8192 - 1));
    }
  } else if (kind == "paper") {
    for (int64_t s : {int64_t(2048), per_gpu, N}) {
      const int64_t c = std::min(s, N);
      w.push_back(c);
      r.push_back(std::max<int64_t>(1, c / 2048));
    }
  } else {
    TORCH_CHECK(false, "bench scaling: --schedule '", kind,
                "' is not known; use reference or paper");
  }
  Schedule s;
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::find(s.w.begin(), s.w.end(), w[i]) != s.w.end()) continue;  // repeats dropped
    s.w.push_back(w[i]);
    s.r.push_back(r[i]);
  }
  return s;
}

}  // namespace

int bench_scaling(const BenchScalingOptions& o) {
  mpi_ensure_initialized();
  const int64_t P = mpi_world_size();
  TORCH_CHECK(o.total_tokens % P == 0, "bench scaling: --total-tokens ", o.total_tokens,
              " does not split over ", P, " ranks");
  const int64_t per_gpu = o.total_tokens / P;
  // q, k, v and the output on every rank
  tensor_memory_check("bench scaling", "--total-tokens / ranks x --heads x --head-dim",
                      {per_gpu, o.heads, o.head_dim}, 4, o.dtype, c10::Device(o.device));
  TORCH_CHECK(o.schedule == "reference" || o.schedule == "paper", "bench scaling: --schedule '",
              o.schedule, "' is not a schedule; use reference or paper");
  std::vector<int64_t> lens = o.seq_lens;
  if (lens.empty())  // the default: 8K, 16K, ... that divide the total
    for (int64_t n = 8192; n <= o.total_tokens; n *= 2)
      if (o.total_tokens % n == 0) lens.push_back(n);
  TORCH_CHECK(!lens.empty(), "bench scaling: no length of 8192 x 2^k divides --total-tokens ",
              o.total_tokens, "; give --seq-lens");
  // Every length checked before any is measured (a late refusal would lose the rows taken).
  for (int64_t N : lens) {
    TORCH_CHECK(o.total_tokens % N == 0, "bench scaling: N = ", N, " does not divide the total ",
                o.total_tokens);
    // Data-parallel lengths: each rank times per_gpu / N whole sequences of the total's.
    TORCH_CHECK(N > per_gpu || per_gpu % N == 0, "bench scaling: N = ", N,
                " does not divide the tokens per rank, --total-tokens / ranks = ", per_gpu,
                " (every rank times the same number of whole sequences); give a total that is a "
                "multiple of N x ",
                P);
    TORCH_CHECK(N <= per_gpu || (N % per_gpu == 0 && P % (N / per_gpu) == 0),
                "bench scaling: N = ", N, " needs ", N / per_gpu,
                " sequence-parallel ranks, which does not divide ", P);
    const Schedule sch = schedule_for(o.schedule, N, per_gpu);
    tensor_memory_check("bench scaling", "--total-tokens / ranks x --heads x --head-dim",
                        {per_gpu, o.heads, o.head_dim}, 4, o.dtype, c10::Device(o.device),
                        dilated_plain_score_bytes(per_gpu, N, o.heads, sch.w, sch.r, o.dtype,
                                                  c10::Device(o.device)));
  }
  std::vector<JsonLine> rows;
  std::string card;
  bool dense_on = o.dense;
  char buf[512];
  log_info("bench scaling: " + std::to_string(o.total_tokens) + " tokens, " + std::to_string(P) +
           " rank(s), " + std::to_string(o.heads) + " heads x " + std::to_string(o.head_dim) +
           ", " + c10::toString(o.dtype) + ", schedule " + o.schedule);
  std::snprintf(buf, sizeof(buf), "%-8s %12s %6s %4s %4s %11s %9s %9s  %s", "attn", "N", "B", "dp",
                "sp", "forward_ms", "TFLOP/s", "peak_GiB", "segments / rates");
  log_info(buf);
  for (int64_t N : lens) {
    const int64_t sp = N <= per_gpu ? 1 : N / per_gpu;
    const int64_t dp = P / sp, L = N / sp, B_total = o.total_tokens / N;
    const int64_t B = std::max<int64_t>(1, B_total / dp);
    auto grid = process_grid_create(static_cast<int>(dp), static_cast<int>(sp), o.device);
    if (card.empty()) {
      card = bench_device_name(grid->device);
      engine_flags_cpu_note(o.engine, grid->device, "bench scaling");
    }
    Schedule sch = schedule_for(o.schedule, N, per_gpu);
    DilatedAttentionOptions opt;
    opt.segment_lengths = sch.w;
    opt.dilation_rates = sch.r;
    opt.engine = o.engine;
    auto topt = at::TensorOptions().dtype(o.dtype).device(grid->device);
    const double flops =
        dilated_forward_flops(B_total, N, o.heads, o.head_dim, sch.w, sch.r, false);

    auto record = [&](const std::string& attn, double ms, double peak, const std::string& note) {
      JsonLine row;
      row.add("seq_len", N)
          .add("total_tokens", o.total_tokens)
          .add("world_size", P)
          .add("attention", attn)
          .add("forward_ms", ms)
          .add("peak_gib", peak)
          .add("device", card)
          .add("batch_per_rank", B)
          .add("data_parallel", dp)
          .add("sequence_parallel", sp)
          .add("heads", o.heads)
          .add("head_dim", o.head_dim)
          .add("dtype", std::string(c10::toString(o.dtype)));
      if (attn == "dilated")
        row.add("segments", bench_list_str(sch.w))
            .add("rates", bench_list_str(sch.r))
            .add("tflops", flops / ms * 1e-9 / P);
      else
        row.add("tflops", 4.0 * B_total * o.heads * o.head_dim * double(N) * N / ms * 1e-9 / P);
      if (!note.empty()) row.add("note", note);
      rows.push_back(row);
      std::snprintf(
          buf, sizeof(buf), "%-8s %12lld %6lld %4lld %4lld %11.3f %9.2f %9.2f  %s %s", attn.c_str(),
          (long long)N, (long long)B, (long long)dp, (long long)sp, ms,
          attn == "dilated" ? flops / ms * 1e-9 / P
                            : 4.0 * B_total * o.heads * o.head_dim * double(N) * N / ms * 1e-9 / P,
          peak,
          attn == "dilated" ? (bench_list_str(sch.w) + " / " + bench_list_str(sch.r)).c_str() : "",
          note.c_str());
      log_info(buf);
    };

    if (o.dilated) {
      std::string note;
      double ms = std::nan(""), peak = std::nan("");
      try {
        bench_peak_reset(grid->device);
        at::manual_seed(7 + grid->world_rank);
        auto q = at::randn({B, L, o.heads, o.head_dim}, topt), k = at::randn_like(q),
             v = at::randn_like(q);
        SequenceParallelAttention attn(grid);
        ms = bench_median_ms(grid->device, o.warmup, o.repeats, [&] {
          if (sp == 1)
            dilated_attention_forward(q, k, v, opt);
          else
            attn.forward(q, k, v, opt);
        });
        peak = bench_peak_gib(grid->device);
      } catch (const c10::OutOfMemoryError& e) {
        note = "out of memory";
      }
      // Every rank must agree on the outcome before the next collective.
      const bool oom = bench_world_max(note.empty() ? 0.0 : 1.0) > 0;
      if (oom) note = "out of memory";
      record("dilated", oom ? std::nan("") : bench_world_max(ms),
             oom ? std::nan("") : bench_world_max(peak), note);
    }
    if (dense_on && sp == 1 && N <= o.dense_max_len) {
      std::string note;
      double ms = std::nan(""), peak = std::nan("");
      try {
        bench_peak_reset(grid->device);
        auto q = at::randn({B, o.heads, N, o.head_dim}, topt), k = at::randn_like(q),
             v = at::randn_like(q);
        ms = bench_median_ms(grid->device, 1, std::max(1, o.repeats),
                             [&] { at::scaled_dot_product_attention(q, k, v); });
        peak = bench_peak_gib(grid->device);
      } catch (const c10::OutOfMemoryError& e) {
        note = "out of memory";
      }
      const bool oom = bench_world_max(note.empty() ? 0.0 : 1.0) > 0;
      if (oom) note = "out of memory";
      ms = oom ? std::nan("") : bench_world_max(ms);
      if (!oom && ms > o.dense_time_cap_s * 1e3) note = "over the time cap; longer N not timed";
      record("dense", ms, oom ? std::nan("") : bench_world_max(peak), note);
      if (!note.empty()) dense_on = false;
    }
  }
  if (!o.json.empty() && mpi_world_rank() == 0) {
    JsonLine extra;
    extra.add("world_size", P).add("schedule", o.schedule).add("causal", false);
    bench_write_results(o.json, o.command, card, extra, rows);
    log_info("wrote " + o.json);
  }
  return 0;
}

}  // namespace longnet
