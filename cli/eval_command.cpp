// `longnet eval`: validation loss of a trained LongNetLM against context length
// (train/context_eval.h): every context length scores the same final tokens of windows that end
// at the same positions. Under mpirun every window is split over the ranks (sequence-parallel
// attention), for contexts one device cannot hold. Writes JSON and, with --plot, a PNG through
// launch/plot_eval.py.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "longnet/cli/bench_common.h"
#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/model_flags.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_parallel_attention.h"
#include "longnet/train/context_eval.h"

#ifndef LONGNET_PYTHON_PATH
#define LONGNET_PYTHON_PATH "python3"
#endif
#ifndef LONGNET_SOURCE_DIR
#define LONGNET_SOURCE_DIR "."
#endif

namespace longnet {
namespace {

// Runs launch/plot_eval.py on the results file; says why when it cannot.
void plot_results(const std::string& json, const std::string& png) {
  const char* env = std::getenv("LONGNET_PYTHON");
  const std::string python = env && *env ? env : LONGNET_PYTHON_PATH;
  const std::string script = std::string(LONGNET_SOURCE_DIR) + "/launch/plot_eval.py";
  const std::string cmd = "'" + python + "' '" + script + "' '" + json + "' '" + png + "'";
  const int rc = std::system(cmd.c_str());
  if (rc == 0) {
    log_info("eval: plot " + png);
  } else {
    log_info("eval: no plot (" + cmd + " exited with " + std::to_string(rc) +
             "; exit 3 means matplotlib is missing from that python: pip install matplotlib, "
             "or set LONGNET_PYTHON to a python that has it)");
  }
}

}  // namespace

int cmd_eval(const Args& args) {
  CliFlags f("eval");
  flags_eval(f);
  f.parse(args);
  if (f.help_requested()) return std::cout << f.usage(), 0;
  f.no_positional();
  mpi_ensure_initialized();
  const auto device = device_auto(f.get("device"));
  const auto dtype = dtype_from_name(f.get("dtype"));
  if (dtype != at::kFloat && !(dtype == at::kBFloat16 && device.is_cuda()))
    throw std::invalid_argument("eval: --dtype takes float32, or bfloat16 on cuda (autocast)");
  if (!f.get("plot").empty() && f.get("json").empty())
    throw std::invalid_argument("eval: --plot draws the --json results; give --json too");

  const int world = mpi_world_size();
  auto grid = process_grid_create(1, world, device.type());
  auto loaded = model_load(model_flags_get(f, grid->device, at::kFloat, f.get_int("seed")));
  const std::string data_path = f.get("data").empty() ? loaded.config.data.path : f.get("data");
  auto data = validation_tokens_open(data_path);
  ContextEvalOptions o;
  o.context_lens = f.get_int_list("context-lens");
  o.score_tokens = f.get_int("score-tokens");
  o.batch_size = f.get_int("batch-size");
  o.windows = f.get_int("batches") * o.batch_size;
  o.bf16_autocast = dtype == at::kBFloat16;
  log_info("eval: " + loaded.source + "; data " + data.description + "; " + std::to_string(world) +
           " rank(s), device " + grid->device.str());

  std::unique_ptr<AttentionBackend> backend;
  if (world > 1)
    backend = std::make_unique<SequenceParallelAttention>(grid);
  else
    backend = std::make_unique<LocalAttention>();
  auto rows = context_eval(loaded.model, data, *grid, *backend, o);

  const bool bytes = data.vocab_size == 256;
  const int64_t T = o.score_tokens > 0
                        ? o.score_tokens
                        : *std::min_element(o.context_lens.begin(), o.context_lens.end());
  const int64_t trained = loaded.config.data.seq_len;
  std::ostringstream s;
  s << "eval: the final " << T << " tokens of " << o.windows << " windows (trained at context "
    << trained << ")\n"
    << "  context      loss   " << (bytes ? "bits/byte" : "bits/token") << "   tokens   seconds\n";
  std::vector<JsonLine> json_rows;
  for (const auto& r : rows) {
    s << "  " << std::setw(7) << r.context_len << std::fixed << std::setprecision(4)
      << std::setw(10) << r.loss << std::setw(12) << r.bits_per_token << std::setw(9) << r.tokens
      << std::setprecision(2) << std::setw(10) << r.seconds
      << (r.context_len > trained ? "  (beyond training)" : "") << "\n"
      << std::defaultfloat;
    JsonLine j;
    j.add("context_len", r.context_len)
        .add("loss", r.loss)
        .add(bytes ? "bits_per_byte" : "bits_per_token", r.bits_per_token)
        .add("scored_tokens", r.tokens)
        .add("seconds", r.seconds);
    json_rows.push_back(j);
  }
  log_info(s.str());
  if (grid->world_rank == 0 && !f.get("json").empty()) {
    JsonLine extra;
    extra.add("model", loaded.source)
        .add("data", data.description)
        .add("score_tokens", T)
        .add("windows", o.windows)
        .add("trained_context", trained)
        .add("ranks", int64_t(world))
        .add("dtype", f.get("dtype"));
    bench_write_results(f.get("json"), command_line("eval", args), bench_device_name(grid->device),
                        extra, json_rows);
    log_info("eval: results " + f.get("json"));
    if (!f.get("plot").empty()) plot_results(f.get("json"), f.get("plot"));
  }
  return 0;
}

}  // namespace longnet
