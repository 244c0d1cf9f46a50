// Shared flags of the model-using commands (see model_flags.h).
#include "longnet/cli/model_flags.h"

#include <ATen/Context.h>

#include <stdexcept>

#include "longnet/cli/common_flags.h"
#include "longnet/parallel/mpi_bootstrap.h"

namespace longnet {

ModelLoadOptions model_flags_get(const CliFlags& f, c10::Device device, c10::ScalarType dtype,
                                 int64_t seed) {
  ModelLoadOptions o;
  o.checkpoint = f.get("checkpoint");
  o.config = f.get("config");
  o.random_init = f.get_switch("random-init");
  o.device = device;
  o.dtype = dtype;
  o.seed = seed;
  if (!o.random_init && o.checkpoint.empty())
    throw std::invalid_argument(
        "--checkpoint is required: a `longnet train` checkpoint, or a "
        "parameters file with --config CONFIG.yaml");
  return o;
}

c10::Device device_auto(const std::string& name) {
  if (name == "auto") return at::hasCUDA() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  const auto type = device_from_name(name);
  if (type == c10::kCUDA && !at::hasCUDA())
    throw std::invalid_argument(
        "--device cuda: this machine has no usable GPU (no CUDA device or "
        "driver, or a build without the CUDA path); use --device cpu or "
        "auto");
  return type == c10::kCUDA ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

c10::ScalarType dtype_auto(const std::string& name, const c10::Device& device) {
  if (name == "auto") return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  return dtype_from_name(name);
}

void single_rank_require(const std::string& command) {
  mpi_ensure_initialized();
  if (mpi_world_size() > 1)
    throw std::invalid_argument(
        "longnet " + command + " runs on one rank (one GPU, or the CPU), not under mpirun with " +
        std::to_string(mpi_world_size()) +
        " ranks; run it without mpirun (prompts of any length prefill in chunks on one device, "
        "--prefill-chunk; `longnet generate` can also split a prefill over ranks under mpirun)");
}

}  // namespace longnet
