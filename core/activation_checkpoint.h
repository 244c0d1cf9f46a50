// Activation checkpointing: run a block without keeping its activations and recompute them in
// the backward pass (one block's activations live at a time). Reentrant, as PyTorch's
// checkpoint(use_reentrant=True): the recompute restores the forward's RNG and autocast state,
// so dropout masks and dtypes match, and collectives inside the block (sequence parallelism)
// run again in the same order on every rank.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace longnet {

using CheckpointedFn = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// Returns fn(inputs); the graph holds only `inputs`. Parameters used inside fn receive their
// gradients during the backward's recompute. Without grad mode it simply calls fn.
at::Tensor activation_checkpoint(const CheckpointedFn& fn, const std::vector<at::Tensor>& inputs);

}  // namespace longnet
