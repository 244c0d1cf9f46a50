#include "longnet/core/device_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace longnet {
namespace {

// The least memory limit of this process's control groups, -1 when none: cgroup v2
// (memory.max, "max" when unlimited) and v1 (memory.limit_in_bytes), at every level from the
// process's group up to the root, as /proc/self/cgroup names them (a batch job's limit is often
// on a parent group).
int64_t cgroup_memory_limit() {
  int64_t least = -1;
  auto take = [&](const std::string& file) {
    std::ifstream f(file);
    int64_t v = 0;
    if (f >> v && v > 0 && (least < 0 || v < least)) least = v;
  };
  std::ifstream self("/proc/self/cgroup");
  for (std::string line; std::getline(self, line);) {
    // "0::/path" (v2), "N:memory:/path" (v1; the controller list may name others beside it)
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = "," + line.substr(a + 1, b - a - 1) + ",";
    std::string path = line.substr(b + 1), base, file;
    if (controllers == ",,") {
      base = "/sys/fs/cgroup", file = "memory.max";
    } else if (controllers.find(",memory,") != std::string::npos) {
      base = "/sys/fs/cgroup/memory", file = "memory.limit_in_bytes";
    } else {
      continue;
    }
    if (path.find("..") != std::string::npos) continue;
    for (;;) {
      take(base + path + "/" + file);
      if (path.empty()) break;
      const size_t slash = path.rfind('/');
      path = slash == std::string::npos ? "" : path.substr(0, slash);
    }
  }
  take("/sys/fs/cgroup/memory.max");
  return least;
}

// The least positive of a and b; -1 when neither is.
int64_t least_known(int64_t a, int64_t b) {
  if (a <= 0) return b > 0 ? b : -1;
  return b > 0 && b < a ? b : a;
}

// The host's memory for all its processes: physical, or its control groups' limit (a
// container, a batch job) where lower; -1 when unknown.
int64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return least_known(pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : -1,
                     cgroup_memory_limit());
}

// What one process may still address under its limit (ulimit -v); -1 when unlimited.
int64_t process_memory_limit() {
  struct rlimit as {};
  if (::getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur == RLIM_INFINITY) return -1;
  const int64_t limit = int64_t(std::min<rlim_t>(as.rlim_cur, rlim_t(INT64_MAX)));
  // The limit counts every mapping, and the process already maps its libraries (some GiB with
  // CUDA's): what is left of it is what new work may take. Address space only reserved
  // (PROT_NONE: allocator arenas, CUDA's) is left out: later allocations are placed inside it.
  int64_t mapped = 0;
  if (FILE* f = std::fopen("/proc/self/maps", "r")) {
    char line[8192];  // (a path is at most 4096 bytes)
    while (std::fgets(line, sizeof(line), f)) {
      unsigned long long lo = 0, hi = 0;
      char perms[8] = {};
      if (std::sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) == 3 && hi > lo &&
          std::strncmp(perms, "---", 3) != 0)
        mapped += int64_t(hi - lo);
    }
    std::fclose(f);
  }
  return std::max<int64_t>(limit - mapped, 1);
}

std::string gib_text(double bytes) {
  char text[64];
  if (std::isfinite(bytes) && bytes >= 0)
    std::snprintf(text, sizeof(text), "about %.1f GiB", bytes / double(1 << 30));
  else
    std::snprintf(text, sizeof(text), "more memory than any machine has");
  return text;
}

// "12.0 GiB": a memory's size.
std::string gib_size(int64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.1f GiB", double(bytes) / double(1 << 30));
  return text;
}

bool fits(double bytes, int64_t have) {
  return have < 0 || (std::isfinite(bytes) && bytes >= 0 && bytes <= double(have));
}

}  // namespace

int64_t device_memory_bytes(const c10::Device& device) {
  if (device.is_cpu()) return least_known(host_memory_bytes(), process_memory_limit());
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
  if (fits(bytes, have)) return;
  throw std::runtime_error(what + " needs " + gib_text(bytes) + " on " + device.str() +
                           ", more than its " + gib_size(have) + " of memory; " + fix);
}

void host_memory_check(double bytes, int processes, const c10::Device& device,
                       const std::string& what, const std::string& fix) {
  if (!device.is_cpu() || processes <= 1) return device_memory_check(bytes, device, what, fix);
  const double all = bytes * double(processes);
  if (const int64_t host = host_memory_bytes(); !fits(all, host))
    throw std::runtime_error(what + " needs " + gib_text(all) + " on " + device.str() + " (" +
                             gib_text(bytes) + " for each of its " + std::to_string(processes) +
                             " processes on this host), more than its " + gib_size(host) +
                             " of memory; " + fix);
  if (const int64_t each = process_memory_limit(); !fits(bytes, each))
    throw std::runtime_error(what + " needs " + gib_text(bytes) + " on " + device.str() +
                             " in each of its " + std::to_string(processes) +
                             " processes, more than the " + gib_size(each) +
                             " one process may address (ulimit -v); " + fix);
}

}  // namespace longnet
