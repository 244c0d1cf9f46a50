// `longnet bench attention` and `longnet bench scaling`: their flags (the benchmarks themselves
// are bench_attention.cpp and bench_scaling.cpp).
#include <iostream>
#include <stdexcept>

#include "longnet/cli/bench_attention.h"
#include "longnet/cli/bench_common.h"
#include "longnet/cli/bench_scaling.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"

namespace longnet {

int cmd_bench_attention(const Args& args) {
  CliFlags f("bench attention");
  flags_bench_attention(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  flags_agree_across_ranks(f);
  f.no_positional();
  BenchAttentionOptions o;
  o.seq_lens = f.get_int_list("seq-lens");
  o.tokens = f.get_int("tokens");
  o.heads = f.get_int("heads");
  o.head_dims = f.get_int_list("head-dims");
  o.segments = f.get_int_list("segments");
  o.rates = f.get_int_list("rates");
  o.weak_scaling_first = f.get_int("weak-scaling-first");
  if (f.given("weak-scaling-first") && (f.given("segments") || f.given("rates")))
    throw std::invalid_argument(
        "longnet bench attention: --weak-scaling-first F sets the segments and rates itself "
        "(segments {F, N/P, N}, rates {1, N/(P F), N/F}); leave out --segments and --rates, or "
        "--weak-scaling-first");
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
  bench_results_path_check(o.json, "longnet bench attention --json");
  try {
    return bench_attention(o);
  } catch (const OptionsError& e) {
    // The owners name their fields; here they came from flags.
    auto flag = [](std::string field) {
      const std::string base = field.substr(0, field.find('['));
      const std::string index = field.substr(base.size());
      if (base == "segment_lengths") return "--segments" + index;
      if (base == "dilation_rates") return "--rates" + index;
      if (base == "seq_len") return std::string("--seq-lens");
      if (base == "sequence_parallel") return std::string("--sp");
      return field;
    };
    std::string also;
    for (const auto& r : e.related()) also += (also.empty() ? " (see " : ", ") + flag(r);
    throw std::invalid_argument("bench attention: " + flag(e.field()) + ": " + e.detail() +
                                (also.empty() ? "" : also + ")"));
  }
}

int cmd_bench_scaling(const Args& args) {
  CliFlags f("bench scaling");
  flags_bench_scaling(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  flags_agree_across_ranks(f);
  f.no_positional();
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
  bench_results_path_check(o.json, "longnet bench scaling --json");
  return bench_scaling(o);
}

}  // namespace longnet
