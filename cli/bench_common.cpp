// Timing and provenance helpers for the benchmarks (see bench_common.h).
#include "longnet/cli/bench_common.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <stdexcept>
#include <vector>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "longnet/core/file_util.h"
#include "longnet/longnet_build_info.h"
#include "longnet/parallel/mpi_bootstrap.h"

namespace longnet {

double bench_median_ms(const c10::Device& device, int warmup, int repeats,
                       const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
#ifdef LONGNET_WITH_CUDA
    if (device.is_cuda()) {
      at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
      start.record();
      fn();
      stop.record();
      stop.synchronize();
      ms.push_back(start.elapsed_time(stop));
      continue;
    }
#endif
    auto t0 = std::chrono::steady_clock::now();
    fn();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::string bench_device_name(const c10::Device& device) {
#ifdef LONGNET_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return "cpu (" + std::to_string(at::get_num_threads()) + " threads)";
}

std::string bench_date_utc() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d", std::gmtime(&now));
  return buf;
}

std::string bench_commit() {
  return LONGNET_GIT_COMMIT;
}

void bench_peak_reset(const c10::Device& d) {
#ifdef LONGNET_WITH_CUDA
  if (d.is_cuda()) {
    at::empty({1}, at::TensorOptions().device(d));  // the allocator knows the device from here
    c10::cuda::CUDACachingAllocator::emptyCache();
    c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
  }
#endif
}

double bench_peak_gib(const c10::Device& d) {
#ifdef LONGNET_WITH_CUDA
  if (d.is_cuda())
    return double(
               c10::cuda::CUDACachingAllocator::getDeviceStats(d.index()).allocated_bytes[0].peak) /
           double(1ull << 30);
#endif
  return std::nan("");
}

double bench_world_max(double x) {
  MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return x;
}

std::string bench_list_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

}  // namespace longnet

namespace longnet {

void bench_results_path_check(const std::string& path, const std::string& what) {
  if (path.empty()) return;
  mpi_ensure_initialized();
  if (mpi_world_rank() == 0) output_file_prepare(path, what, OutputContent::kResults);
}

void bench_write_results(const std::string& path, const std::string& command,
                         const std::string& device, const JsonLine& extra,
                         const std::vector<JsonLine>& rows) {
  JsonLine head;
  head.add("command", command)
      .add("device", device)
      .add("date", bench_date_utc())
      .add("commit", bench_commit());
  std::string h = head.str(), e = extra.str();
  std::ostringstream f;
  f << h.substr(0, h.size() - 1);
  if (e.size() > 2) f << ", " << e.substr(1, e.size() - 2);
  f << ",\n  \"rows\": [\n";
  for (size_t i = 0; i < rows.size(); ++i)
    f << "    " << rows[i].str() << (i + 1 < rows.size() ? ",\n" : "\n");
  f << "  ]\n}\n";
  // Checked again (the path may have changed during the run), then written beside it and renamed
  // over it: a FIFO or device put there meanwhile is replaced, never opened.
  output_file_prepare(path, "results file", OutputContent::kResults);
  const std::string text = f.str();
  file_write_atomic(path, {{text.data(), text.size()}});
}

}  // namespace longnet
