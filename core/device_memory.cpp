#include "longnet/core/device_memory.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace longnet {

int64_t device_memory_bytes(const c10::Device& device) {
  if (device.is_cpu()) {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : -1;
  }
#ifdef LONGNET_WITH_CUDA
  if (device.is_cuda()) {
    const int index = device.has_index() ? device.index() : 0;
    const int count = at::cuda::device_count();
    TORCH_CHECK(count > 0, "a CUDA run was asked for but no GPU is visible; run on the CPU device");
    TORCH_CHECK(index < count, "CUDA device ", index, " was asked for but ", count,
                " GPU(s) are visible");
    return static_cast<int64_t>(at::cuda::getDeviceProperties(index)->totalGlobalMem);
  }
#endif
  return -1;
}

void device_memory_check(double bytes, const c10::Device& device, const std::string& what,
                         const std::string& fix) {
  const int64_t have = device_memory_bytes(device);
  if (have < 0 || (std::isfinite(bytes) && bytes >= 0 && bytes <= double(have))) return;
  char need[64], got[64];
  if (std::isfinite(bytes) && bytes >= 0)
    std::snprintf(need, sizeof(need), "about %.1f GiB", bytes / double(1 << 30));
  else
    std::snprintf(need, sizeof(need), "more memory than any machine has");
  std::snprintf(got, sizeof(got), "%.1f GiB", double(have) / double(1 << 30));
  throw std::runtime_error(what + " needs " + need + " on " + device.str() + ", more than its " +
                           got + " of memory; " + fix);
}

}  // namespace longnet
