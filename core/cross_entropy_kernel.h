// The chunked cross-entropy's row kernels (chunked_cross_entropy.cpp), torch-free for nvcc: one
// read of a chunk's logits for the forward's log-sum-exp and loss, and one read-and-write for
// the backward's d loss / d logits, where the ATen expression walks the (rows, V) chunk in
// float32 six times.
#pragma once

#include <cstdint>

namespace longnet {

struct CrossEntropyRowsParams {
  void* logits = nullptr;            // (rows, V) contiguous, the compute dtype; backward: in place
  const int64_t* targets = nullptr;  // (rows,)
  float* lse = nullptr;              // (rows,): written by the forward, read by the backward
  float* loss = nullptr;             // forward: (rows,) lse - logit of the target (NaN for a
                                     // target outside [0, V))
  const float* scale = nullptr;      // backward: one float, d loss / d (sum of row losses)
  int64_t rows = 0, V = 0;
};

// Forward: lse and loss per row. Backward: logits <- scale * (softmax - onehot(target)), in
// float32 and rounded to the compute dtype. dtype: a KernelDtype code (kernel_dtype.h); stream: a
// cudaStream_t.
void cross_entropy_rows_forward_launch(const CrossEntropyRowsParams& p, int dtype, void* stream);
void cross_entropy_rows_backward_launch(const CrossEntropyRowsParams& p, int dtype, void* stream);

}  // namespace longnet
