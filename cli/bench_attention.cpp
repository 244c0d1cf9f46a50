// Dilated attention benchmark (see bench_attention.h): times, effective TFLOP/s by docs/design.md
// section 6, peak memory, and for sequence parallelism the bytes exchanged and the all-gather
// bus bandwidth (nccl-tests convention: busbw = algbw * (n - 1) / n).
#include "longnet/cli/bench_attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>

#include "longnet/cli/bench_common.h"
#include "longnet/cli/common_flags.h"
#include "longnet/core/dilated_attention.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_layout.h"
#include "longnet/parallel/sequence_parallel_attention.h"
#include "longnet/train/step_profile.h"

namespace longnet {

namespace {

struct Schedule {
  std::vector<int64_t> w, r;
};

Schedule schedule_for(const BenchAttentionOptions& o, int64_t N, int64_t L) {
  if (o.weak_scaling_first <= 0) return {o.segments, o.rates};
  const int64_t f = o.weak_scaling_first;
  Schedule s;
  // Repeats are kept: at P = 1, L = N and the branch (N, N / F) appears twice, so every rank
  // does the same work at every P (three branches of F rows each) and the times compare.
  for (int64_t w : {f, L, N}) {
    s.w.push_back(w);
    s.r.push_back(w / f);
  }
  return s;
}

// The flags that must agree with every sequence length, checked before any timing: B = tokens / N
// sequences per step, and the weak-scaling schedule's rates L / F and N / F (L = N / P).
void options_check(const BenchAttentionOptions& o, int64_t P) {
  for (int64_t N : o.seq_lens) {
    if (o.tokens % N != 0)
      throw std::invalid_argument("longnet bench attention: --tokens " + std::to_string(o.tokens) +
                                  " is not a positive multiple of --seq-lens " + std::to_string(N) +
                                  " (B = tokens / N sequences per step); use --tokens " +
                                  std::to_string(N) + " or a multiple of it");
    const int64_t L = SequenceLayout(N, P, {}).local_len();
    const int64_t F = o.weak_scaling_first;
    if (F <= 0) {
      // The branches, as the timing below will use them (a bad --segments / --rates is refused
      // before the dense reference has been timed).
      const Schedule sch = schedule_for(o, N, L);
      SequenceLayout(N, P, sch.w);
      DilatedAttentionOptions opt;
      opt.segment_lengths = sch.w;
      opt.dilation_rates = sch.r;
      dilated_options_check(opt);
      continue;
    }
    if (L % F != 0)
      throw std::invalid_argument(
          "longnet bench attention: --weak-scaling-first " + std::to_string(F) +
          " must divide the local length N / P = " + std::to_string(L) + " of --seq-lens " +
          std::to_string(N) + " on " + std::to_string(P) +
          " rank(s) (segments {F, L, N}, rates {1, L/F, N/F}); use a divisor of " +
          std::to_string(L));
  }
}

}  // namespace

int bench_attention(const BenchAttentionOptions& o) {
  // More ranks than --sp would time several copies at once (sharing the CPU, or the host),
  // reported as one: refused.
  mpi_ensure_initialized();
  if (mpi_world_size() != o.sp)
    throw std::invalid_argument(
        "longnet bench attention: --sp " + std::to_string(o.sp) + " under " +
        std::to_string(mpi_world_size()) + " rank(s) would time " +
        (mpi_world_size() > o.sp ? "several copies at once, reported as one"
                                 : "with ranks that are not there") +
        ": give --sp " + std::to_string(mpi_world_size()) + ", or start " + std::to_string(o.sp) +
        " rank(s) (mpirun -np " + std::to_string(o.sp) + ")");
  auto grid = process_grid_create(0, o.sp, o.device);
  const auto dev = grid->device;
  engine_flags_cpu_note(o.engine, dev, "bench attention");
  const int64_t P = grid->sequence_parallel;
  options_check(o, P);
  // Every size is checked against the device's memory before any is timed (a size that does not
  // fit, found midway, would lose the rows measured before it).
  for (int64_t D : o.head_dims)
    for (int64_t N : o.seq_lens) {
      const int64_t L = SequenceLayout(N, P, {}).local_len();
      const Schedule sch = schedule_for(o, N, L);
      SequenceLayout(N, P, sch.w);  // every segment nests with L
      // q, k, v, the output gradient and the output
      tensor_memory_check(
          "bench attention (--head-dims " + std::to_string(D) + ", --seq-lens " +
              std::to_string(N) + ")",
          "B x N / P x --heads x head dim", {o.tokens / N, L, o.heads, D}, 5, o.dtype, dev,
          (o.backward ? 2 : 1) *
              dilated_plain_score_bytes(o.tokens / N * L, N, o.heads, sch.w, sch.r, o.dtype, dev));
    }
  const std::string card = bench_device_name(dev);
  std::vector<JsonLine> rows;
  auto print = [&](const std::string& line) { log_info(line); };
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%-12s %9s %5s %4s %10s %9s %11s %9s %9s", "attention", "N", "B",
                "D", "fwd_ms", "fwd_TF/s", "fwd+bwd_ms", "fb_TF/s", "peak_GiB");
  print("bench attention on " + card + (P > 1 ? " x " + std::to_string(P) + " ranks" : ""));
  if (o.dense && !dev.is_cuda())
    print(
        "bench attention: note: dense SDPA is timed on GPUs only (its ratios need cuDNN's "
        "kernels); `bench scaling` times dense attention on the CPU");
  print(buf);
  // Per head dim, the last dense measurement: dilated rows are compared with dense at the same
  // N, or, past --dense-max-len, with the dense of the largest N measured before them.
  struct DenseRef {
    int64_t seq_len = 0;
    double forward_tflops = 0, forward_backward_tflops = 0;
  };
  std::map<int64_t, DenseRef> dense_ref;
  // Prints dilated TF/s as a share of dense's and records it in the dilated row.
  auto ratio_to_dense = [&](JsonLine& row, double fwd, double fb, const DenseRef& d, int64_t N) {
    const double rf = fwd / d.forward_tflops, rfb = fb / d.forward_backward_tflops;
    row.add("dense_reference_seq_len", d.seq_len)
        .add("forward_ratio_to_dense", rf)
        .add("forward_backward_ratio_to_dense", rfb);
    char line[256];
    std::snprintf(line, sizeof(line),
                  "  dilated / dense at N = %lld%s: forward %.1f%%, forward+backward %.1f%% of "
                  "dense TFLOP/s",
                  (long long)d.seq_len, d.seq_len == N ? "" : " (the largest dense measured)",
                  100 * rf, 100 * rfb);
    print(line);
  };

  for (int64_t D : o.head_dims) {
    for (int64_t N : o.seq_lens) {
      const int64_t L = SequenceLayout(N, P, {}).local_len();
      const int64_t B = o.tokens / N, H = o.heads;
      Schedule sch = schedule_for(o, N, L);
      DilatedAttentionOptions opt;
      opt.segment_lengths = sch.w;
      opt.dilation_rates = sch.r;
      opt.is_causal = o.causal;
      opt.engine = o.engine;
      at::manual_seed(1234 + grid->world_rank);
      auto topt = at::TensorOptions().dtype(o.dtype).device(dev);
      auto q = at::randn({B, L, H, D}, topt), k = at::randn_like(q), v = at::randn_like(q),
           gout = at::randn_like(q);
      const double flops = dilated_forward_flops(B, N, H, D, sch.w, sch.r, o.causal) / P;

      SequenceParallelAttention sp_attn(grid);
      std::function<void()> fwd, fwd_bwd;
      if (P == 1) {
        fwd = [&] { dilated_attention_forward(q, k, v, opt); };
        fwd_bwd = [&] {
          auto f = dilated_attention_forward(q, k, v, opt);
          dilated_attention_backward(gout, q, k, v, f.out, f.lse, f.rng, opt);
        };
      } else {
        fwd = [&] { sp_attn.forward(q, k, v, opt); };
        fwd_bwd = [&] {
          auto f = sp_attn.forward(q, k, v, opt);
          sp_attn.backward(gout, q, k, v, f, opt);
        };
      }
      bench_peak_reset(dev);
      double ms_f = bench_median_ms(dev, o.warmup, o.repeats, fwd);
      double ms_fb = o.backward ? bench_median_ms(dev, o.warmup, o.repeats, fwd_bwd) : std::nan("");
      double peak = bench_peak_gib(dev);
      ms_f = bench_world_max(ms_f);
      ms_fb = bench_world_max(ms_fb);
      peak = bench_world_max(peak);

      JsonLine row;
      row.add("attention", "dilated")
          .add("seq_len", N)
          .add("batch", B)
          .add("heads", H)
          .add("head_dim", D)
          .add("segments", bench_list_str(sch.w))
          .add("rates", bench_list_str(sch.r))
          .add("causal", o.causal)
          .add("dtype", std::string(c10::toString(o.dtype)))
          .add("sequence_parallel", P)
          .add("forward_ms", ms_f)
          .add("forward_tflops", flops / ms_f * 1e-9)
          .add("forward_backward_ms", ms_fb)
          .add("forward_backward_tflops", 3.5 * flops / ms_fb * 1e-9)
          .add("peak_gib", peak);

      if (P > 1) {
        // Bytes of one forward+backward and the bandwidth of the exchange alone.
        int64_t before = sp_attn.bytes_sent();
        fwd_bwd();
        device_sync(dev);
        const int64_t bytes = sp_attn.bytes_sent() - before;
        double busbw = 0;
        for (size_t i = 0; i < sch.w.size(); ++i) {
          const int64_t w = std::min(sch.w[i], N), r = sch.r[i];
          if (w <= L) continue;
          auto group = grid->segment_group(static_cast<int>(w / L));
          const int64_t g = group->size();
          auto send = at::randn({2, B, (L + r - 1) / r, H, D}, topt);
          auto recv = at::empty({g, 2, B, (L + r - 1) / r, H, D}, topt);
          double ms = bench_median_ms(dev, o.warmup, o.repeats,
                                      [&] { group->all_gather(send, recv)->wait(); });
          ms = bench_world_max(ms);
          const double algbw = double(g) * send.nbytes() / (ms * 1e-3) / 1e9;
          busbw = std::max(busbw, algbw * double(g - 1) / double(g));
          row.add("allgather_bytes_per_rank_branch" + std::to_string(i), int64_t(send.nbytes()))
              .add("allgather_ms_branch" + std::to_string(i), ms);
        }
        row.add("bytes_sent_per_rank_per_step", bytes).add("allgather_busbw_gbps", busbw);
      }
      std::snprintf(buf, sizeof(buf), "%-12s %9lld %5lld %4lld %10.2f %9.1f %11.2f %9.1f %9.2f",
                    "dilated", (long long)N, (long long)B, (long long)D, ms_f, flops / ms_f * 1e-9,
                    ms_fb, 3.5 * flops / ms_fb * 1e-9, peak);
      print(buf);
      bool dense_here = false;
#ifdef LONGNET_WITH_CUDA
      dense_here = o.dense && P == 1 && dev.is_cuda() && N <= o.dense_max_len;
#endif
      if (!dense_here && P == 1 && dense_ref.count(D))
        ratio_to_dense(row, flops / ms_f * 1e-9, 3.5 * flops / ms_fb * 1e-9, dense_ref[D], N);
      rows.push_back(row);
      const size_t dilated_row = rows.size() - 1;

      // Each branch alone: where the time goes (the sum exceeds the whole by the merges).
      if (o.breakdown && P == 1) {
        for (size_t i = 0; i < sch.w.size(); ++i) {
          DilatedAttentionOptions one = opt;
          one.segment_lengths = {sch.w[i]};
          one.dilation_rates = {sch.r[i]};
          const double bf =
              dilated_forward_flops(B, N, H, D, one.segment_lengths, one.dilation_rates, o.causal);
          double f1 = bench_median_ms(dev, o.warmup, o.repeats,
                                      [&] { dilated_attention_forward(q, k, v, one); });
          double fb1 = bench_median_ms(dev, o.warmup, o.repeats, [&] {
            auto f = dilated_attention_forward(q, k, v, one);
            dilated_attention_backward(gout, q, k, v, f.out, f.lse, f.rng, one);
          });
          std::snprintf(buf, sizeof(buf),
                        "  branch w=%lld r=%lld: fwd %.2f ms (%.1f TF/s), fwd+bwd %.2f ms "
                        "(%.1f TF/s), %.1f%% of the FLOPs",
                        (long long)sch.w[i], (long long)sch.r[i], f1, bf / f1 * 1e-9, fb1,
                        3.5 * bf / fb1 * 1e-9, 100.0 * bf / flops);
          print(buf);
          JsonLine b;
          b.add("attention", "dilated_branch")
              .add("seq_len", N)
              .add("batch", B)
              .add("head_dim", D)
              .add("segment", sch.w[i])
              .add("rate", sch.r[i])
              .add("forward_ms", f1)
              .add("forward_tflops", bf / f1 * 1e-9)
              .add("forward_backward_ms", fb1)
              .add("forward_backward_tflops", 3.5 * bf / fb1 * 1e-9);
          rows.push_back(b);
        }
      }

#ifdef LONGNET_WITH_CUDA
      if (dense_here) {
        // LibTorch's dense causal attention, cuDNN backend, on the same tensors.
        auto qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);
        const double dflops = 4.0 * B * H * D * double(N) * N / (o.causal ? 2 : 1);
        auto dense_fwd = [&] {
          return at::_scaled_dot_product_cudnn_attention(qt, kt, vt, std::nullopt, true, 0.0,
                                                         o.causal, false, std::nullopt);
        };
        auto empty = at::empty({0}, topt.dtype(at::kLong));
        bench_peak_reset(dev);
        double dms_f = bench_median_ms(dev, o.warmup, o.repeats, [&] { dense_fwd(); });
        double dms_fb = bench_median_ms(dev, o.warmup, o.repeats, [&] {
          auto r = dense_fwd();
          const auto& out = std::get<0>(r);
          at::_scaled_dot_product_cudnn_attention_backward(
              gout.transpose(1, 2), qt, kt, vt, out, std::get<1>(r), empty, empty, at::Tensor(),
              at::Tensor(), at::Tensor(), N, N, 0.0, o.causal, std::nullopt);
        });
        double dpeak = bench_peak_gib(dev);
        JsonLine d;
        d.add("attention", "dense_cudnn")
            .add("seq_len", N)
            .add("batch", B)
            .add("heads", H)
            .add("head_dim", D)
            .add("causal", o.causal)
            .add("dtype", std::string(c10::toString(o.dtype)))
            .add("forward_ms", dms_f)
            .add("forward_tflops", dflops / dms_f * 1e-9)
            .add("forward_backward_ms", dms_fb)
            .add("forward_backward_tflops", 3.5 * dflops / dms_fb * 1e-9)
            .add("peak_gib", dpeak);
        std::snprintf(buf, sizeof(buf), "%-12s %9lld %5lld %4lld %10.2f %9.1f %11.2f %9.1f %9.2f",
                      "dense_cudnn", (long long)N, (long long)B, (long long)D, dms_f,
                      dflops / dms_f * 1e-9, dms_fb, 3.5 * dflops / dms_fb * 1e-9, dpeak);
        print(buf);
        rows.push_back(d);
        dense_ref[D] = {N, dflops / dms_f * 1e-9, 3.5 * dflops / dms_fb * 1e-9};
        ratio_to_dense(rows[dilated_row], flops / ms_f * 1e-9, 3.5 * flops / ms_fb * 1e-9,
                       dense_ref[D], N);
      }
#endif
    }
  }
  if (!o.json.empty() && grid->world_rank == 0) {
    JsonLine extra;
    extra.add("world_size", int64_t(grid->world_size))
        .add("attention_kernel", o.engine.backend)
        .add("streams", o.engine.streams)
        .add("fused_merge", o.engine.fused_merge);
    bench_write_results(o.json, o.command, card, extra, rows);
    print("wrote " + o.json);
  }
  return 0;
}

}  // namespace longnet
