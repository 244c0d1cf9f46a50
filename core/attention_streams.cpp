// The stream executor of dilated attention's dense problems (see attention_streams.h).
#include "longnet/core/attention_streams.h"

#include <algorithm>
#include <mutex>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace longnet {

void streams_run(int64_t n, int64_t streams, const at::Tensor& like,
                 const std::function<std::vector<at::Tensor>(int64_t)>& fn) {
#ifdef LONGNET_WITH_CUDA
  const int S = like.is_cuda() ? static_cast<int>(std::min<int64_t>(streams, n)) : 1;
  if (S > 1) {
    const auto dev = like.device().index();
    // The same side streams for every call: the caching allocator reuses a freed block only on
    // the stream it was made on, so fresh pool streams each call would strand cached memory.
    static std::mutex mu;  // (the backward runs on autograd's device thread)
    static std::vector<std::vector<c10::cuda::CUDAStream>> streams_of(at::cuda::device_count());
    std::vector<c10::cuda::CUDAStream> side;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto& mine = streams_of.at(dev);
      while (static_cast<int>(mine.size()) < S)
        mine.push_back(c10::cuda::getStreamFromPool(false, dev));
      side = mine;
    }
    const auto main = at::cuda::getCurrentCUDAStream(dev);
    at::cuda::CUDAEvent start;
    start.record(main);
    for (int s = 0; s < S; ++s) start.block(side[s]);
    // Joins the side streams back into the main one even when fn throws, so that inputs made on
    // the main stream are not reused while a side stream still reads them.
    struct Join {
      const std::vector<c10::cuda::CUDAStream>& side;
      int S;
      c10::cuda::CUDAStream main;
      std::vector<at::Tensor> made;
      ~Join() {
        try {
          for (int s = 0; s < S; ++s) {
            at::cuda::CUDAEvent done;
            done.record(side[s]);
            done.block(main);
          }
          for (const auto& t : made)
            c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), main);
        } catch (...) {  // a CUDA error here is reported by the next call on the main stream
        }
      }
    } join{side, S, main, {}};
    for (int64_t i = 0; i < n; ++i) {
      c10::cuda::CUDAStreamGuard guard(side[i % S]);
      for (auto& t : fn(i))
        if (t.defined()) join.made.push_back(std::move(t));
    }
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace longnet
