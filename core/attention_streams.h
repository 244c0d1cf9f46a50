// Runs independent pieces of GPU work spread over a few CUDA streams: the dense problems of one
// dilated attention are many and often small (one head, a few thousand rows), so several at
// once keep the GPU full where one alone leaves SMs idle.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace longnet {

// Runs fn(i) for i in [0, n). On a CUDA device (`like`'s) with streams > 1, piece i runs on side
// stream i mod streams, every side stream ordered after the current stream and the current
// stream after all of them; the tensors fn returns (made on a side stream) are marked as used by
// the current stream, so the caching allocator does not reuse them before later work has read
// them. Elsewhere, or with streams == 1, the pieces run in order on the current stream.
void streams_run(int64_t n, int64_t streams, const at::Tensor& like,
                 const std::function<std::vector<at::Tensor>(int64_t)>& fn);

}  // namespace longnet
