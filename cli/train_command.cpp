// `longnet train CONFIG [key=value ...] [flags]`: reads and checks the config, then runs the
// training loop (train/trainer.h). The --debug-* flags inject faults for tests (they fill
// train/fault_injection.h) and are documented there, not in the user's help.
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/core/file_util.h"
#include "longnet/train/config.h"
#include "longnet/train/config_schema.h"
#include "longnet/train/fault_injection.h"
#include "longnet/train/trainer.h"

namespace longnet {
namespace {
// This process's rank as the launcher (mpirun) gives it, 0 when not launched by one.
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* r = std::getenv(name)) return std::atoi(r);
  return 0;
}

// "RANK:STEP" of --debug-stall.
std::pair<int64_t, int64_t> rank_step(const std::string& text) {
  const auto colon = text.find(':');
  if (colon == 0 || colon == std::string::npos || colon + 1 == text.size())
    throw std::invalid_argument("longnet train: --debug-stall '" + text +
                                "' is not RANK:STEP (e.g. 1:3)");
  const int64_t rank = parse_int_strict(text.substr(0, colon), "longnet train --debug-stall");
  const int64_t step = parse_int_strict(text.substr(colon + 1), "longnet train --debug-stall");
  if (rank < 0 || step < 0)
    throw std::invalid_argument("longnet train: --debug-stall '" + text +
                                "' must name a rank and a step >= 0 (e.g. 1:3)");
  return {rank, step};
}

}  // namespace

int cmd_train(const Args& args) {
  CliFlags f("train");
  flags_train(f);
  f.parse(args);
  if (f.help_requested()) {
    std::cout
        << "usage: longnet train CONFIG.yaml [key=value ...] [flags]\n"
           "  CONFIG: an experiment config (configs/*.yaml; configs/base.yaml is the paper's\n"
           "  model); key=value overrides any key, e.g. optim.lr=3e-4 train.steps=100\n"
           "  model.segment_lengths=[64,128]\n"
        << f.flags_usage();
    return 0;
  }
  flags_agree_across_ranks(f);  // (the configs and overrides are compared once resolved)
  std::string config_path;
  std::vector<std::string> overrides;
  for (const auto& a : f.positional()) {
    // key=value, unless it names a file (a config in a folder such as runs/lr=1e-3/).
    const bool is_file = path_kind(a) == PathKind::kFile;
    if (a.find('=') != std::string::npos && !is_file) {
      if (a.substr(0, a.find('=')).find('/') != std::string::npos)
        throw std::invalid_argument("longnet train: '" + a +
                                    "' is no file (a config), and no key=value override (a key "
                                    "has no '/'); check the path");
      overrides.push_back(a);
    } else if (config_path.empty())
      config_path = a;
    else if (path_kind(a) == PathKind::kMissing && a.find('.') != std::string::npos &&
             config_is_section(a.substr(0, a.find('.'))))
      throw std::invalid_argument(
          "longnet train: '" + a +
          "' is no file and has no '=value': an override is key=value (e.g. " +
          (a.find(':') != std::string::npos && a.find(':') + 1 < a.size()  // YAML's key: value
               ? a.substr(0, a.find(':')) + "=" +
                     a.substr(std::min(a.find_first_not_of(' ', a.find(':') + 1), a.size()))
               : a.substr(0, a.find(':')) + "=...") +
          ")");
    else
      throw std::invalid_argument("longnet train: more than one config file given ('" +
                                  config_path + "' and '" + a + "')");
  }
  overrides_unique_check(overrides, "train");
  if (config_path.empty())
    throw std::invalid_argument(
        "longnet train: no config given; name one, e.g. `longnet train configs/tiny.yaml` (a "
        "small CPU run) or configs/base.yaml (the paper's model, every default spelled out)");
  FaultInjection& faults = fault_injection();
  if (!f.get("debug-nan-at").empty()) faults.nan_at_steps = f.get_int_list("debug-nan-at");
  faults.sleep_after_step = f.get_int("debug-sleep-after");
  if (!f.get("debug-stall").empty())
    std::tie(faults.stall_rank, faults.stall_at_step) = rank_step(f.get("debug-stall"));
  faults.crash_in_checkpoint_step = f.get_int("debug-crash-in-checkpoint");
  faults.stop_in_eval_at_step = f.get_int("debug-stop-in-eval");
  faults.stop_in_save_at_step = f.get_int("debug-stop-in-save");
  faults.metrics_fail_at_step = f.get_int("debug-metrics-fail-at");
  faults.stop_in_step_at_step = f.get_int("debug-stop-in-step");
  faults.config_parser_hang = f.get_switch("debug-parser-hang");
  faults.truncate_data_at_step = f.get_int("debug-truncate-data-at");

  // --check-config and --print-ranks answer a question and train nothing: one at a time, and
  // without the flags of a training run (which they would ignore).
  if (f.given("check-config") && f.get_switch("print-ranks"))
    throw std::invalid_argument(
        "longnet train: --check-config P and --print-ranks both ask about the config; give one");
  if (f.given("check-config") || f.get_switch("print-ranks"))
    for (const char* run_flag : {"trace", "profile", "stop-after"})
      if (f.given(run_flag))
        throw std::invalid_argument(std::string("longnet train: --") + run_flag +
                                    " applies to a training run, which --check-config and "
                                    "--print-ranks do not start; leave one of them out");
  auto cfg = config_load(config_path, overrides);
  if (f.given("check-config")) {
    const int64_t world = f.get_int("check-config");
    config_check(cfg, static_cast<int>(world));
    // (under mpirun every rank checks; rank 0 alone answers, once)
    if (launcher_rank() == 0)
      std::cout << "config OK for " << world << " rank(s):\n" << config_to_yaml(cfg);
    return 0;
  }
  if (f.get_switch("print-ranks")) {
    const int64_t ranks = config_rank_count(cfg);
    constexpr int64_t kMaxRanks = int64_t{1} << 20;  // as --check-config
    if (ranks > kMaxRanks)
      throw std::invalid_argument(
          "longnet train: grid.data_parallel x grid.sequence_parallel = " + std::to_string(ranks) +
          " ranks, more than the " + std::to_string(kMaxRanks) + " a job can have here");
    config_check(cfg, static_cast<int>(ranks));
    if (launcher_rank() == 0) std::cout << ranks << "\n";
    return 0;
  }
  TrainRunOptions run;
  run.config_path = config_path;
  run.stop_after = f.get_int("stop-after");
  run.profile_steps = f.get_int("profile");
  run.trace_path = f.get("trace");
  return train_run(cfg, run);
}

}  // namespace longnet
