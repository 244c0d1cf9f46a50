// CUDA graph capture and replay of the decode step (see step_graph.h).
#include "longnet/core/step_graph.h"

#include <ATen/ATen.h>

#include <optional>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace longnet {

struct StepGraph::Impl {
  int calls = 0;
  at::Tensor out;
#ifdef LONGNET_WITH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  std::optional<c10::cuda::CUDAStream> side;  // the warm-up's stream, then the capture's
#endif
};

StepGraph::StepGraph(bool use_graph) : impl_(std::make_unique<Impl>()), use_graph_(use_graph) {}
StepGraph::~StepGraph() = default;

bool StepGraph::captured() const {
#ifdef LONGNET_WITH_CUDA
  return impl_->graph != nullptr;
#else
  return false;
#endif
}

at::Tensor StepGraph::run(const std::function<at::Tensor()>& fn, const at::Tensor& like_device) {
#ifdef LONGNET_WITH_CUDA
  if (use_graph_ && like_device.is_cuda()) {
    auto& s = *impl_;
    c10::cuda::CUDAGuard device_guard(like_device.device());
    if (s.graph) {
      s.graph->replay();
      return s.out;
    }
    // Warm-up and capture run on a side stream, ordered after the caller's work and before it.
    auto caller = at::cuda::getCurrentCUDAStream();
    if (!s.side) s.side = at::cuda::getStreamFromPool();
    auto side = *s.side;
    at::cuda::CUDAEvent before, after;
    before.record(caller);
    before.block(side);
    at::Tensor out;
    {
      c10::cuda::CUDAStreamGuard stream_guard(side);
      if (s.calls++ == 0) {
        out = fn();
      } else {
        s.graph = std::make_unique<at::cuda::CUDAGraph>();
        s.graph->capture_begin();
        s.out = fn();
        s.graph->capture_end();
      }
    }
    after.record(side);
    after.block(caller);
    if (s.graph) {
      s.graph->replay();
      return s.out;
    }
    // Made on the side stream, read on the caller's: keep its memory until the caller is done.
    c10::cuda::CUDACachingAllocator::recordStream(out.storage().data_ptr(), caller);
    return out;
  }
#endif
  (void)like_device;
  return fn();
}

}  // namespace longnet
