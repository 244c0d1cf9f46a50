// Reentrant activation checkpointing (see activation_checkpoint.h).
#include "longnet/core/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/custom_class.h>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace longnet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct FnHolder : torch::CustomClassHolder {
  CheckpointedFn fn;
};

// The RNG streams a block may draw from (dropout): CPU, and CUDA when present.
struct RngState {
  at::Tensor cpu, cuda;
  bool has_cuda = false;
};

RngState rng_get() {
  RngState s;
  s.cpu = at::detail::getDefaultCPUGenerator().get_state();
#ifdef LONGNET_WITH_CUDA
  if (at::cuda::is_available()) {
    s.cuda = at::cuda::detail::getDefaultCUDAGenerator().get_state();
    s.has_cuda = true;
  }
#endif
  return s;
}

void rng_set(const RngState& s) {
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  cpu.set_state(s.cpu);
#ifdef LONGNET_WITH_CUDA
  if (s.has_cuda) {
    at::Generator cuda = at::cuda::detail::getDefaultCUDAGenerator();
    cuda.set_state(s.cuda);
  }
#endif
}

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static tensor_list forward(AutogradContext* ctx, c10::intrusive_ptr<FnHolder> holder,
                             at::TensorList input_list) {
    tensor_list inputs = input_list.vec();
    auto rng = rng_get();
    ctx->saved_data["fn"] = c10::IValue::make_capsule(holder);
    ctx->saved_data["rng_cpu"] = rng.cpu;
    if (rng.has_cuda) ctx->saved_data["rng_cuda"] = rng.cuda;
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(at::kCUDA);
    ctx->saved_data["autocast_dtype"] = at::autocast::get_autocast_dtype(at::kCUDA);
    c10::List<bool> needs;
    for (const auto& t : inputs) needs.push_back(t.defined() && t.requires_grad());
    ctx->saved_data["needs_grad"] = needs;
    ctx->save_for_backward(inputs);
    return {holder->fn(inputs)};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<FnHolder>(ctx->saved_data["fn"].toCapsule());
    auto saved = ctx->get_saved_variables();
    auto needs = ctx->saved_data["needs_grad"].toBoolList();
    std::vector<at::Tensor> inputs;
    for (size_t i = 0; i < saved.size(); ++i) {
      if (!saved[i].defined()) {
        inputs.push_back(saved[i]);
        continue;
      }
      inputs.push_back(saved[i].detach().requires_grad_(needs.get(i)));
    }
    // Recompute under the forward's RNG and autocast state, then restore ours.
    auto ours = rng_get();
    RngState theirs;
    theirs.cpu = ctx->saved_data["rng_cpu"].toTensor();
    if (ctx->saved_data.count("rng_cuda")) {
      theirs.cuda = ctx->saved_data["rng_cuda"].toTensor();
      theirs.has_cuda = true;
    }
    rng_set(theirs);
    const bool autocast_was = at::autocast::is_autocast_enabled(at::kCUDA);
    const auto dtype_was = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, ctx->saved_data["autocast"].toBool());
    at::autocast::set_autocast_dtype(at::kCUDA, ctx->saved_data["autocast_dtype"].toScalarType());
    at::Tensor out;
    {
      at::AutoGradMode enable(true);
      out = holder->fn(inputs);
    }
    at::autocast::set_autocast_enabled(at::kCUDA, autocast_was);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype_was);
    rng_set(ours);
    torch::autograd::backward({out}, {grads[0]});
    tensor_list result{at::Tensor()};  // for the holder
    for (size_t i = 0; i < inputs.size(); ++i)
      result.push_back(needs.get(i) ? inputs[i].grad() : at::Tensor());
    return result;
  }
};

}  // namespace

at::Tensor activation_checkpoint(const CheckpointedFn& fn, const std::vector<at::Tensor>& inputs) {
  if (!at::GradMode::is_enabled()) return fn(inputs);
  auto holder = c10::make_intrusive<FnHolder>();
  holder->fn = fn;
  return CheckpointFunction::apply(holder, at::TensorList(inputs))[0];
}

}  // namespace longnet
