// Shared pieces of the benchmark programs: timing with CUDA events or the host clock, the
// medians they report, and the provenance every results file carries (card, date, commit).
#pragma once

#include <functional>
#include <string>

#include <c10/core/Device.h>

namespace longnet {

// Median milliseconds of fn over `repeats` runs after `warmup` runs. CUDA events when device
// is CUDA, the host clock otherwise.
double bench_median_ms(const c10::Device& device, int warmup, int repeats,
                       const std::function<void()>& fn);

// "NVIDIA H100 80GB HBM3" or "cpu (N threads)".
std::string bench_device_name(const c10::Device& device);
// ISO date (UTC) of now.
std::string bench_date_utc();
// The commit the binary was built from.
std::string bench_commit();

}  // namespace longnet
