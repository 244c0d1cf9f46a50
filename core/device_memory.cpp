#include "longnet/core/device_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace longnet {

int64_t device_memory_bytes(const c10::Device& device) {
  if (device.is_cpu()) {
    // The physical memory, or less where the process may use less: its address-space limit
    // (ulimit -v) or its control group's memory limit (a container, a batch job).
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    int64_t have = pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : -1;
    auto lower = [&](int64_t limit) {
      if (limit > 0 && (have < 0 || limit < have)) have = limit;
    };
    struct rlimit as {};
    if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
      lower(int64_t(std::min<rlim_t>(as.rlim_cur, rlim_t(INT64_MAX))));
    std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // (cgroup v2; "max" when unlimited)
    int64_t limit = 0;
    if (cgroup >> limit) lower(limit);
    return have;
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
