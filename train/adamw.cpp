// AdamW: fused on CUDA, per-tensor maths on the CPU (see adamw.h).
#include "longnet/train/adamw.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

namespace longnet {

AdamW::AdamW(std::vector<Group> groups, double beta1, double beta2, double eps)
    : groups_(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (const auto& g : groups_)
    for (const auto& p : g.params) {
      params_.push_back(p);
      State s;
      s.exp_avg = at::zeros_like(p, p.options().dtype(at::kFloat));
      s.exp_avg_sq = at::zeros_like(p, p.options().dtype(at::kFloat));
      s.step = at::zeros({}, p.options().dtype(at::kFloat));
      state_.push_back(std::move(s));
    }
}

void AdamW::step(double lr, const at::Tensor& skip) {
  c10::AutoGradMode no_grad(false);
  const bool on_host = params_.empty() || !params_[0].is_cuda();
  if (on_host && skip.item<float>() != 0) return;
  // Step counts advance by 1 - skip: the fused kernel reads them, and returns at once on skip.
  const at::Tensor advance = on_host ? at::Tensor() : 1 - skip;
  size_t index = 0;
  for (const auto& g : groups_) {
    std::vector<at::Tensor> p, grads, m, v, steps;
    for (const auto& param : g.params) {
      State& s = state_[index++];
      if (!param.grad().defined()) continue;
      p.push_back(param);
      grads.push_back(param.grad());
      m.push_back(s.exp_avg);
      v.push_back(s.exp_avg_sq);
      steps.push_back(s.step);
    }
    if (p.empty()) continue;
    if (p[0].is_cuda()) {
      at::_foreach_add_(steps, advance);
      at::_fused_adamw_(p, grads, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, beta1_, beta2_,
                        g.weight_decay, eps_, /*amsgrad=*/false, /*maximize=*/false,
                        /*grad_scale=*/std::nullopt, /*found_inf=*/skip);
      continue;
    }
    for (size_t i = 0; i < p.size(); ++i) {
      steps[i].add_(1);
      const double t = steps[i].item<double>();
      p[i].mul_(1.0 - lr * g.weight_decay);
      m[i].lerp_(grads[i], 1.0 - beta1_);
      v[i].mul_(beta2_).addcmul_(grads[i], grads[i], 1.0 - beta2_);
      const double bc1 = 1.0 - std::pow(beta1_, t), bc2 = 1.0 - std::pow(beta2_, t);
      auto denom = (v[i].sqrt() / std::sqrt(bc2)).add_(eps_);
      p[i].addcdiv_(m[i], denom, -lr / bc1);
    }
  }
}

}  // namespace longnet
