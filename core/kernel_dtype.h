// The element types longnet's CUDA kernels are built for, as the small integer codes their
// launch functions take: one mapping for every kernel (the device side is cuda_dispatch.cuh).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cstdint>

namespace longnet {

enum KernelDtype : int { kKernelFloat = 0, kKernelHalf = 1, kKernelBFloat16 = 2 };

// The code of t; `what` names the kernel in the error for any other dtype.
inline int kernel_dtype_code(c10::ScalarType t, const char* what) {
  switch (t) {
    case c10::kFloat:
      return kKernelFloat;
    case c10::kHalf:
      return kKernelHalf;
    case c10::kBFloat16:
      return kKernelBFloat16;
    default:
      TORCH_CHECK(false, what, ": the CUDA kernel takes float32, float16 or bfloat16, got ", t);
  }
}

// Whether t's data starts on a 16-byte boundary (the kernels' vector loads).
inline bool kernel_aligned16(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// t contiguous and starting on a 16-byte boundary, copied if need be (a view at an odd offset).
inline at::Tensor kernel_ready(const at::Tensor& t) {
  auto c = t.contiguous();
  return kernel_aligned16(c) ? c : c.clone();
}

}  // namespace longnet
