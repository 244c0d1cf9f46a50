// Launch helpers for longnet's CUDA kernels: device attributes, and programmatic dependent
// launch (PDL, sm_90 and up), which lets a kernel start while the one before it in the stream
// finishes. Include from .cu files.
//
// The rules a kernel launched early follows (every kernel that uses pdl_wait here does):
//   - before pdl_wait() it reads only memory that no kernel of the current chain writes (weights,
//     a cache written by earlier steps, positions fixed before the step) and writes nothing
//     (the allocator may have handed the previous kernel's freed inputs to this one's outputs);
//   - pdl_wait() returns once the previous kernel has finished and its writes are visible;
//   - pdl_trigger() lets the next kernel launch early; without it that happens at exit.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace longnet {

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

inline void cuda_launch_check(cudaError_t e, const char* kernel, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(kernel) + ": " + what + ": " + cudaGetErrorString(e));
}

// An attribute of the current device.
inline int cuda_device_attribute(cudaDeviceAttr what) {
  int device = 0, n = 0;
  cuda_launch_check(cudaGetDevice(&device), "longnet kernel", "cudaGetDevice");
  cuda_launch_check(cudaDeviceGetAttribute(&n, what, device), "longnet kernel",
                    "cudaDeviceGetAttribute");
  return n;
}

// The PTX version `kernel` was built from for the current device (cudaFuncGetAttributes once per
// kernel and device: an eager decode step launches dozens of kernels).
inline cudaError_t cuda_kernel_ptx_version(const void* kernel, int* version) {
  static std::mutex mutex;
  static std::map<std::pair<const void*, int>, int> known;
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(kernel, device);
  const auto it = known.find(key);
  if (it != known.end()) return *version = it->second, cudaSuccess;
  cudaFuncAttributes fa;
  e = cudaFuncGetAttributes(&fa, kernel);
  if (e != cudaSuccess) return e;
  known.emplace(key, fa.ptxVersion);
  *version = fa.ptxVersion;
  return cudaSuccess;
}

// Launches kernel<<<grid, block, smem, stream>>>(args...), early (PDL) when `early` and the
// kernel was built from compute_90 code or later (where its pdl_wait is compiled in; elsewhere
// a plain launch, which is also correct).
template <typename... Params, typename... Args>
cudaError_t launch_maybe_early(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                               cudaStream_t stream, bool early, Args&&... args) {
  int ptx = 0;
  if (early) {
    const cudaError_t e = cuda_kernel_ptx_version(reinterpret_cast<const void*>(kernel), &ptx);
    if (e != cudaSuccess) return e;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = early && ptx >= 90 ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace longnet
