// `longnet bench attention` and `longnet bench scaling`: their flags (the benchmarks themselves
// are bench_attention.cpp and bench_scaling.cpp).
#include <iostream>

#include "cli/bench_attention.h"
#include "cli/bench_scaling.h"
#include "cli/commands.h"
#include "cli/common_flags.h"

namespace longnet {

int cmd_bench_attention(const Args& args) {
  CliFlags f("bench attention");
  f.add("seq-lens", "32768,1048576", "sequence lengths N (global), comma-separated");
  f.add("tokens", "1048576", "tokens per step B*N; B = tokens / N");
  f.add("heads", "12", "attention heads");
  f.add("head-dims", "64", "head dims, comma-separated");
  f.add("segments", "2048,4096,8192,16384,32768", "segment lengths");
  f.add("rates", "1,2,4,6,12", "dilation rates");
  f.add("weak-scaling-first", "0",
        "if > 0: segments {F, L, N} with rates {1, L/F, N/F} (the paper's Figure-5 schedule)");
  f.add_switch("non-causal", "time non-causal attention (default causal)");
  f.add("dtype", "bfloat16", "bfloat16, float16 or float32");
  f.add("sp", "1", "sequence-parallel ranks (run under mpirun -np P)");
  f.add("warmup", "3", "untimed runs");
  f.add("repeats", "10", "timed runs (median reported)");
  f.add_switch("no-dense", "skip LibTorch's dense attention");
  f.add("dense-max-len", "32768", "time dense attention up to this N");
  f.add_switch("forward-only", "skip the backward");
  f.add_switch("breakdown", "also time each branch alone (single GPU)");
  f.add("json", "", "write results to this JSON file");
  f.add("device", "cuda", "cuda or cpu");
  engine_flags_add(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  BenchAttentionOptions o;
  o.seq_lens = f.get_int_list("seq-lens");
  o.tokens = f.get_int("tokens");
  o.heads = f.get_int("heads");
  o.head_dims = f.get_int_list("head-dims");
  o.segments = f.get_int_list("segments");
  o.rates = f.get_int_list("rates");
  o.weak_scaling_first = f.get_int("weak-scaling-first");
  o.causal = !f.get_switch("non-causal");
  o.dtype = dtype_from_name(f.get("dtype"));
  o.sp = f.get_int("sp");
  o.warmup = static_cast<int>(f.get_int("warmup"));
  o.repeats = static_cast<int>(f.get_int("repeats"));
  o.dense = !f.get_switch("no-dense");
  o.dense_max_len = f.get_int("dense-max-len");
  o.backward = !f.get_switch("forward-only");
  o.breakdown = f.get_switch("breakdown");
  o.json = f.get("json");
  o.device = device_from_name(f.get("device"));
  o.engine = engine_flags_get(f);
  o.command = command_line("bench attention", args);
  return bench_attention(o);
}

int cmd_bench_scaling(const Args& args) {
  CliFlags f("bench scaling");
  f.add("total-tokens", "33554432", "tokens per step, fixed while N grows");
  f.add("seq-lens", "", "sequence lengths (default: powers of two from 8192 to the total)");
  f.add("heads", "4", "attention heads");
  f.add("head-dim", "8", "dimension per head");
  f.add("dtype", "float16", "float16, bfloat16 or float32");
  f.add("schedule", "reference",
        "reference: w {8192,16384,32768} clipped, r 2^(w/8192-1); paper: w {2048, N/P, N}");
  f.add_switch("no-dense", "skip dense SDPA");
  f.add("dense-max-len", "131072", "time dense SDPA up to this N");
  f.add("dense-time-cap", "10", "seconds: stop timing dense past a forward this slow");
  f.add("warmup", "2", "untimed runs");
  f.add("repeats", "5", "timed runs (median reported)");
  f.add("json", "", "write results to this JSON file");
  f.add("device", "cuda", "cuda or cpu");
  engine_flags_add(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  BenchScalingOptions o;
  o.total_tokens = f.get_int("total-tokens");
  if (!f.get("seq-lens").empty()) o.seq_lens = f.get_int_list("seq-lens");
  o.heads = f.get_int("heads");
  o.head_dim = f.get_int("head-dim");
  o.dtype = dtype_from_name(f.get("dtype"));
  o.schedule = f.get("schedule");
  o.dense = !f.get_switch("no-dense");
  o.dense_max_len = f.get_int("dense-max-len");
  o.dense_time_cap_s = f.get_double("dense-time-cap");
  o.warmup = static_cast<int>(f.get_int("warmup"));
  o.repeats = static_cast<int>(f.get_int("repeats"));
  o.json = f.get("json");
  o.device = device_from_name(f.get("device"));
  o.engine = engine_flags_get(f);
  o.command = command_line("bench scaling", args);
  return bench_scaling(o);
}

}  // namespace longnet
