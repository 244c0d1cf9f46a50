// The `longnet` command line: one binary, subcommands for checking, benchmarking and training.
// Run under mpirun for more than one rank; errors end the whole job (see run_main).
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_attention.h"
#include "bench/bench_scaling.h"
#include "longnet_build_info.h"
#include "parallel/attention_check.h"
#include "parallel/comm_check.h"
#include "parallel/mpi_bootstrap.h"
#include "train/cli_flags.h"
#include "train/token_data.h"
#include "train/trainer.h"

namespace longnet {
namespace {

using Args = std::vector<std::string>;

c10::DeviceType parse_device(const std::string& name) {
  if (name == "cpu") return c10::kCPU;
  if (name == "cuda") return c10::kCUDA;
  throw std::invalid_argument("--device: '" + name + "' is not a device; use cpu or cuda");
}

int cmd_check_comm(const Args& args) {
  CliFlags f("check comm");
  f.add("device", "cpu", "cpu (MPI) or cuda (NCCL)");
  f.add("elements", "1024", "elements per rank");
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  return comm_check(parse_device(f.get("device")), f.get_int("elements"));
}

std::string command_line(const std::string& name, const Args& args) {
  std::string s = "longnet " + name;
  for (const auto& a : args) s += " " + a;
  return s;
}

int cmd_check_attention(const Args& args) {
  CliFlags f("check attention");
  f.add("seq-len", "4096", "tokens in the whole sequence (N)");
  f.add("batch", "1", "sequences");
  f.add("heads", "12", "attention heads");
  f.add("head-dim", "64", "dimension per head");
  f.add("segments", "2048,4096", "segment lengths, comma-separated");
  f.add("rates", "1,2", "dilation rates, one per segment length");
  f.add_switch("causal", "causal attention");
  f.add("dtype", "float32", "float32, bfloat16, float16 or float64");
  f.add("sp", "0", "sequence-parallel ranks (0 = all ranks)");
  f.add("seed", "0", "seed of the random input (the same on every rank)");
  f.add("device", "cpu", "cpu (MPI) or cuda (NCCL)");
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  AttentionCheckOptions o;
  o.seq_len = f.get_int("seq-len");
  o.batch = f.get_int("batch");
  o.heads = f.get_int("heads");
  o.head_dim = f.get_int("head-dim");
  o.segments = f.get_int_list("segments");
  o.rates = f.get_int_list("rates");
  o.causal = f.get_switch("causal");
  o.dtype = dtype_from_name(f.get("dtype"));
  o.sp = f.get_int("sp");
  o.seed = static_cast<uint64_t>(f.get_int("seed"));
  o.device = parse_device(f.get("device"));
  return attention_check(o);
}

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
  o.device = parse_device(f.get("device"));
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
  o.device = parse_device(f.get("device"));
  o.command = command_line("bench scaling", args);
  return bench_scaling(o);
}

struct Command {
  std::string help;
  std::function<int(const Args&)> run;
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"check comm",
       {"round-trip tensors through the communicators (MPI or NCCL)", cmd_check_comm}},
      {"check attention",
       {"sequence-parallel attention vs the single-process result", cmd_check_attention}},
      {"bench attention",
       {"time dilated attention (and dense SDPA) forward and backward", cmd_bench_attention}},
      {"bench scaling",
       {"the paper's Figure 5: forward time vs N at fixed tokens", cmd_bench_scaling}},
      {"data build", {"pack a directory of text/code into a byte-token file", data_command}},
      {"train", {"train a LongNetLM from a YAML config (under mpirun)", train_command}},
  };
  return table;
}

std::string usage() {
  std::string s =
      "longnet " LONGNET_VERSION
      " - LongNet dilated attention and sequence-parallel training\n\n"
      "usage: [mpirun -np P] longnet COMMAND [SUBCOMMAND] [flags]   (--help after any command)\n\n"
      "commands:\n";
  for (const auto& [name, cmd] : commands())
    s += "  " + name + std::string(22 - name.size(), ' ') + cmd.help + "\n";
  s += "\n  --version              print version, commit and build settings\n";
  return s;
}

int dispatch(const Args& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
    std::cout << usage();
    return argv.empty() ? 2 : 0;
  }
  if (argv[0] == "--version") {
    std::cout << "longnet " << LONGNET_VERSION << " (commit " << LONGNET_GIT_COMMIT << ", LibTorch "
              << LONGNET_TORCH_VERSION << ", CUDA path " << LONGNET_BUILT_WITH_CUDA << ")\n";
    return 0;
  }
  // Longest match first: "check comm" before "check".
  for (size_t words = std::min<size_t>(2, argv.size()); words >= 1; --words) {
    std::string name = argv[0];
    for (size_t i = 1; i < words; ++i) name += " " + argv[i];
    auto it = commands().find(name);
    if (it != commands().end()) {
      Args rest(argv.begin() + words, argv.end());
      return run_main([&] { return it->second.run(rest); });
    }
  }
  std::cerr << "longnet: unknown command '" << argv[0] << (argv.size() > 1 ? " " + argv[1] : "")
            << "'\n\n"
            << usage();
  return 2;
}

}  // namespace
}  // namespace longnet

int main(int argc, char** argv) {
  return longnet::dispatch(std::vector<std::string>(argv + 1, argv + argc));
}
