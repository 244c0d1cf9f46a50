// Shared pieces of the benchmark programs: timing with CUDA events or the host clock, the
// medians they report, and the provenance every results file carries (card, date, commit).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "longnet/train/metrics.h"

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

// Peak-memory bookkeeping on a CUDA device (NaN on the CPU): reset before a measurement, then
// read the peak allocated since, in GiB.
void bench_peak_reset(const c10::Device& device);
double bench_peak_gib(const c10::Device& device);
// The maximum of x over all ranks (the slowest rank sets the pace).
double bench_world_max(double x);
// "2048,4096".
std::string bench_list_str(const std::vector<int64_t>& v);

}  // namespace longnet

namespace longnet {

// At the start of a command, before any work: throws naming `what` (the flag) unless the results
// file `path` can be written by rank 0 (output_file_prepare: not a directory, FIFO or device, in
// a writable directory, created if needed). Nothing for an empty path.
void bench_results_path_check(const std::string& path, const std::string& what);
// Writes {"command": ..., "device": ..., "date": ..., "commit": ..., <extra>, "rows": [...]}
// to path (creating parent directories), atomically: a regular file, never opened if it is not one.
void bench_write_results(const std::string& path, const std::string& command,
                         const std::string& device, const JsonLine& extra,
                         const std::vector<JsonLine>& rows);

}  // namespace longnet
