// The training loop. Every rank of a data x sequence parallel grid runs it: forward/backward
// through LongNetLM with sequence-parallel attention, gradient accumulation, the gradient
// all-reduce (parallel/grad_sync.h), clipping, AdamW with the warm-up + polynomial-decay schedule,
// bf16 autocast over float32 master weights on GPUs, optional activation checkpointing,
// evaluation (loss and bits per byte), progress on rank 0, a JSON line per step, crash-safe
// checkpoints (every K steps and on SIGINT/SIGTERM) and exact resume (train_state.h).
#pragma once

#include <cstdint>
#include <string>

#include "longnet/train/config.h"

namespace longnet {

struct TrainRunOptions {
  std::string config_path;    // named in the log
  int64_t stop_after = 0;     // > 0: stop (with a checkpoint) after this many steps of this run
  int64_t profile_steps = 0;  // time forward, backward, all-reduce and optimizer of N steps
  std::string trace_path;     // Kineto trace of steps 4 and 5 of the run ("" = none)
};

// Runs the job the config describes, on every rank (initialises MPI if needed). Checks the config
// for this world size first. Returns the exit status; throws on errors (the caller ends the job).
int train_run(const TrainConfig& config, const TrainRunOptions& options);

}  // namespace longnet
