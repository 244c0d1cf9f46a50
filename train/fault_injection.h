// Faults that tests inject into a training job, in one place: the command line's --debug-* flags
// (documented for testing, left out of the user's help) and unit tests set them; library code
// only reads them. Every field's default injects nothing.
#pragma once

#include <cstdint>
#include <vector>

namespace longnet {

struct FaultInjection {
  std::vector<int64_t> nan_at_steps;      // poison the loss with NaN at these steps (0-based)
  int64_t sleep_after_step = 0;           // > 0: after this step, pause 0.5 s per step
  int64_t stall_rank = -1;                // this world rank stops responding ...
  int64_t stall_at_step = -1;             // ... at the start of this step (0-based)
  int64_t crash_in_checkpoint_step = -1;  // die half-way through writing this checkpoint
  bool config_parser_hang = false;        // the config parser's trial child never returns
  int64_t stop_in_eval_at_step = -1;      // a stop signal (SIGUSR1) during this step's evaluation
  int64_t stop_in_save_at_step = -1;      // ... as this step's checkpoint is written
  int64_t stop_in_step_at_step = -1;      // ... before this step's second micro-step
  int64_t metrics_fail_at_step = -1;      // this step's metrics row fails (as on a full disk)
  // Data (issue 18, 20): `data build` throws (as an error would) once this many shards are
  // complete in this run, or ends the process at once as a kill would (leaving the next shard's
  // temporary file); training truncates every training shard to its header after this step.
  int64_t build_fail_after_shards = -1;
  int64_t build_kill_after_shards = -1;
  int64_t build_term_after_shards = -1;  // ... or raises SIGTERM there (as `kill PID` would)
  int64_t truncate_data_at_step = -1;
  // `eval` (issue 19) throws (as a failed forward would) before this context length's (0-based
  // index into its lengths) first forward.
  int64_t eval_fail_at_length = -1;
};

// The process's one instance.
FaultInjection& fault_injection();

}  // namespace longnet
