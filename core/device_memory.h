// How much memory a device has, for refusing work that cannot fit before it is allocated (a
// clear message instead of the allocator's, or the kernel's OOM killer on the CPU).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace longnet {

// The CPU's physical memory (or the process's address-space limit, or its control group's memory
// limit, where lower), or a CUDA device's total memory, in bytes; -1 when unknown.
int64_t device_memory_bytes(const c10::Device& device);

// Throws std::runtime_error "`what` needs about X GiB on DEVICE, more than its Y GiB of memory;
// `fix`" when `bytes` (a lower bound of what the work allocates; < 0 or NaN: beyond any count)
// exceeds the device's memory. Unknown memory passes.
void device_memory_check(double bytes, const c10::Device& device, const std::string& what,
                         const std::string& fix);
// The same for work of `processes` processes on one host, each needing `bytes`: on the CPU
// their sum against the host's memory (physical, control groups) and each one's against the
// address-space limit of one process (ulimit -v); on a GPU, `bytes` against its memory.
void host_memory_check(double bytes, int processes, const c10::Device& device,
                       const std::string& what, const std::string& fix);

}  // namespace longnet
