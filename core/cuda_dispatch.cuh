// Calls a kernel template for the element type behind a KernelDtype code (kernel_dtype.h):
// f(float{}), f(__half{}) or f(__nv_bfloat16{}). Device-side twin of kernel_dtype_code, shared by
// every .cu file.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

namespace longnet {

template <typename F>
decltype(auto) kernel_dtype_dispatch(int code, const char* what, F&& f) {
  switch (code) {
    case 0:
      return f(float{});
    case 1:
      return f(__half{});
    case 2:
      return f(__nv_bfloat16{});
    default:
      throw std::runtime_error(std::string(what) + ": unsupported dtype code " +
                               std::to_string(code));
  }
}

}  // namespace longnet
