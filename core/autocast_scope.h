// CUDA autocast for one scope, with its dtype: the state (enabled, dtype) is process-wide in
// LibTorch, and CUDA's default autocast dtype is float16, so a forward that only switches
// autocast on runs in float16. This sets both and puts back the previous state at exit.
#pragma once

#include <ATen/autocast_mode.h>

namespace longnet {

class CudaAutocastScope {
 public:
  // enabled: the scope's forward under CUDA autocast in `dtype`; false: autocast off in it.
  explicit CudaAutocastScope(bool enabled, at::ScalarType dtype = at::kBFloat16)
      : was_enabled_(at::autocast::is_autocast_enabled(at::kCUDA)),
        was_dtype_(at::autocast::get_autocast_dtype(at::kCUDA)) {
    at::autocast::set_autocast_enabled(at::kCUDA, enabled);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  }
  ~CudaAutocastScope() {
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, was_dtype_);
  }
  CudaAutocastScope(const CudaAutocastScope&) = delete;
  CudaAutocastScope& operator=(const CudaAutocastScope&) = delete;

 private:
  bool was_enabled_;
  at::ScalarType was_dtype_;
};

}  // namespace longnet
