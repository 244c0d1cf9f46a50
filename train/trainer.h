// `longnet train CONFIG [key=value ...]`: the training loop. Every rank of a data x sequence
// parallel grid runs it: forward/backward through LongNetLM with sequence-parallel attention,
// gradient accumulation, gradient all-reduce over the whole world (bucketed), clipping, AdamW
// with the warm-up + polynomial-decay schedule, bf16 autocast over float32 master weights on
// GPUs, optional activation checkpointing, evaluation (loss and bits per byte), progress on
// rank 0, a JSON line per step, crash-safe checkpoints (every K steps and on SIGINT/SIGTERM) and
// exact resume.
#pragma once

#include <string>
#include <vector>

namespace longnet {

// args: those after "train". Returns the process exit status.
int train_command(const std::vector<std::string>& args);

}  // namespace longnet
