// The names longnet gives element types (as its --dtype flags spell them), and the advice for
// logits that overflow in one: shared by the commands and the trainer's evaluations.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace longnet {

// "float32", "bfloat16", "float16", "float64", else PyTorch's name.
inline std::string dtype_short_name(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat:
      return "float32";
    case c10::kBFloat16:
      return "bfloat16";
    case c10::kHalf:
      return "float16";
    case c10::kDouble:
      return "float64";
    default:
      return c10::toString(t);
  }
}

// What to do about logits that are not finite from finite parameters (activations overflowing
// in `t`): a float16/bfloat16 run can go to float32; in float32 or float64 the checkpoint is
// the problem.
inline std::string activation_overflow_advice(c10::ScalarType t) {
  return t == c10::kFloat || t == c10::kDouble
             ? "this checkpoint cannot be used (a diverged training run's, say): use an earlier one"
             : "run in float32 (--dtype float32), or use another checkpoint";
}

}  // namespace longnet
