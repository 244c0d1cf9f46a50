// Learning-rate schedule (see schedule.h).
#include "longnet/train/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace longnet {

double lr_at(const OptimConfig& optim, int64_t step, int64_t total_steps) {
  if (step < 0 || total_steps < 1)
    throw std::invalid_argument("lr_at: step " + std::to_string(step) + " of " +
                                std::to_string(total_steps) + " steps is out of range");
  const int64_t warmup = optim.warmup_steps;
  if (step < warmup) return optim.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t decay_steps = total_steps - warmup;
  if (decay_steps <= 0) return optim.end_lr;
  const double remaining =
      1.0 - std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps));
  return optim.end_lr + (optim.lr - optim.end_lr) * std::pow(remaining, optim.decay_power);
}

}  // namespace longnet
