// AdamW (decoupled weight decay, bias-corrected moments) as torch.optim.AdamW, for groups of
// parameters with their own weight decay. On CUDA one fused multi-tensor kernel updates a whole
// group (at::_fused_adamw_), instead of a dozen kernels per parameter; on the CPU it is the
// plain per-tensor maths.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace longnet {

class AdamW {
 public:
  struct Group {
    std::vector<at::Tensor> params;
    double weight_decay = 0;
  };
  AdamW(std::vector<Group> groups, double beta1, double beta2, double eps);

  // One update of every parameter that has a gradient, at learning rate lr, unless skip (a
  // float32 scalar on the parameters' device) is non-zero: then parameters, moments and step
  // counts stay as they are. On CUDA the kernels read skip themselves, so the host need not wait
  // for the GPU to decide.
  void step(double lr, const at::Tensor& skip);

  // Per-parameter state (in the order of the groups' params), for checkpoints.
  struct State {
    at::Tensor exp_avg, exp_avg_sq;  // like the parameter, float32
    at::Tensor step;                 // float32 scalar on the parameter's device
  };
  std::vector<State>& state() { return state_; }
  const std::vector<State>& state() const { return state_; }
  const std::vector<at::Tensor>& params() const { return params_; }

 private:
  std::vector<Group> groups_;
  std::vector<at::Tensor> params_;
  std::vector<State> state_;
  double beta1_, beta2_, eps_;
};

}  // namespace longnet
