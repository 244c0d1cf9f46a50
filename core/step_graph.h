// A step of fixed-shape device tensors replayed as a CUDA graph: the decode step of generation
// is a few hundred small kernels whose launch cost, not the GPU, would otherwise set the pace at
// small batches. Elsewhere (CPU, or graphs off) the step just runs.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace longnet {

class StepGraph {
 public:
  // use_graph: capture on CUDA (ignored on the CPU).
  explicit StepGraph(bool use_graph);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Runs fn, which must read only tensors whose storage stays put between calls, have no host
  // synchronisation, and return a tensor. The first call on CUDA runs fn eagerly on a side stream
  // (the warm-up that cuBLAS and the allocator need); the second captures it and replays the
  // graph; later calls replay. The returned tensor is the same storage on every replay (the
  // graph's output): read or clone it before the next call.
  at::Tensor run(const std::function<at::Tensor()>& fn, const at::Tensor& like_device);

  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool use_graph_;
};

}  // namespace longnet
