// Timing and profiling of training steps: each step's numbers on their way to the host without
// stalling the GPU (StepStats), wall time per phase (PhaseTimer, --profile), a Kineto trace of a
// few steps (StepTrace, --trace), and small helpers of the progress line.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace longnet {

// A host batch on `device`. A CUDA device gets it from pinned memory without blocking: a copy
// from pageable memory (or a blocking one) waits for the stream to drain, so every microbatch
// would start on an idle GPU that the host then has to fill again. (The pinned block is not
// reused before its copy is done: the caching host allocator records the copy's stream.)
at::Tensor batch_to(const at::Tensor& host, const at::Device& device);

// Waits for the work queued on the device's current stream (nothing on the CPU).
void device_sync(const c10::Device& device);

// Peak GPU memory allocated by this process so far, GiB (0 on the CPU).
double peak_gib();

// One step's loss (summed over ranks) and gradient norm, float64, on their way to the host, and
// the step's time. On CUDA the copy is queued behind the step and waited for only when the
// numbers are read, so the host can queue the next step's work first (the GPU then never idles
// while the host logs), and the time is taken by CUDA events: from the end of the step before
// (or this step's start, when the GPU did something else in between) to this step's end.
class StepStats {
 public:
  // Starts step `step` (from 1) on `device`.
  StepStats(int64_t step, const c10::Device& device);
  // The step's work is queued; stats: (2) {loss summed over ranks, grad norm} on the device.
  void queued(double lr, const at::Tensor& stats);
  int64_t step() const { return step_; }
  double lr() const { return lr_; }
  // {loss summed over ranks, grad norm}, waiting for the copy.
  std::pair<double, double> values();
  // Seconds from the end of `before` (null: this step's start) to this step's end, after values().
  double seconds(const StepStats* before) const;

 private:
  int64_t step_;
  double lr_ = 0;
  at::Tensor host_;  // (2) float64
#ifdef LONGNET_WITH_CUDA
  at::cuda::CUDAEvent start_{cudaEventDefault}, end_{cudaEventDefault};  // timing events
#endif
  std::chrono::steady_clock::time_point start_time_, end_time_;
};

// Wall time of the phases of one step, the device synchronised at each lap (profiling only: it
// stalls the pipeline).
class PhaseTimer {
 public:
  PhaseTimer(const c10::Device& d, bool enabled);
  bool enabled() const { return enabled_; }
  void lap(const std::string& name);
  std::string report() const;  // "forward 12 ms, backward 30 ms, ..."

 private:
  void sync() const;
  c10::Device device_;
  bool enabled_;
  std::chrono::steady_clock::time_point last_;
  std::vector<std::pair<std::string, double>> parts_;
};

// A Kineto trace (CPU ops and CUDA kernels) of some steps of a run, saved as a Chrome trace.
// bench/trace_summary.py sums it up per kernel. A run that ends inside the window saves what it
// traced; one that ends before it says so. An empty path traces nothing.
class StepTrace {
 public:
  // Traces steps [first, first + count) (0-based, as at_step counts them).
  StepTrace(std::string path, c10::Device device, int64_t first = kFirst, int64_t count = kSteps)
      : path_(std::move(path)), device_(device), first_(first), count_(count) {}
  StepTrace(const StepTrace&) = delete;
  StepTrace& operator=(const StepTrace&) = delete;
  ~StepTrace();
  // Called at the start of each step of this run (0-based), and once after the last.
  void at_step(int64_t steps_this_run);
  // The training run's window: steps 4 and 5 (after the first steps' allocations and warm-up).
  static constexpr int64_t kFirst = 3, kSteps = 2;

 private:
  void finish();
  void sync() const;
  std::string path_;
  c10::Device device_;
  int64_t first_, count_;
  bool active_ = false, done_ = false;
  int64_t traced_ = 0;
};

}  // namespace longnet
