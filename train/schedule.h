// The learning-rate schedule of the paper (as fairseq's polynomial_decay): linear warm-up from
// 0 to optim.lr, then polynomial decay to optim.end_lr at the last step. A pure function of the
// step, so a resumed run continues the same curve.
#pragma once

#include <cstdint>

#include "longnet/train/config.h"

namespace longnet {

// Learning rate for optimizer step `step` (0-based) of `total_steps`:
//   step < warmup:  lr * (step + 1) / warmup
//   otherwise:      end_lr + (lr - end_lr) * (1 - (step - warmup) / (total - warmup))^power
// so the first step after warm-up gets lr and step == total_steps would get end_lr; steps past
// the end stay at end_lr.
double lr_at(const OptimConfig& optim, int64_t step, int64_t total_steps);

}  // namespace longnet
