// Step timing and profiling (see step_profile.h).
#include "longnet/train/step_profile.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <set>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace longnet {

void device_sync(const c10::Device& device) {
#ifdef LONGNET_WITH_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream(device.index()).synchronize();
#endif
}

at::Tensor batch_to(const at::Tensor& host, const at::Device& device) {
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

double peak_gib() {
#ifdef LONGNET_WITH_CUDA
  if (at::cuda::is_available()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(at::cuda::current_device());
    return double(stats.allocated_bytes[0].peak) / double(1ull << 30);
  }
#endif
  return 0;
}

// ---- StepStats -------------------------------------------------------------------------------

StepStats::StepStats(int64_t step, const c10::Device& device) : step_(step) {
#ifdef LONGNET_WITH_CUDA
  if (device.is_cuda()) {
    start_.record();
    return;
  }
#endif
  start_time_ = std::chrono::steady_clock::now();
}

void StepStats::queued(double lr, const at::Tensor& stats) {
  lr_ = lr;
#ifdef LONGNET_WITH_CUDA
  if (stats.is_cuda()) {
    host_ = at::empty(stats.sizes(), stats.options().device(at::kCPU).pinned_memory(true));
    host_.copy_(stats, /*non_blocking=*/true);
    end_.record();
    return;
  }
#endif
  host_ = stats.cpu();
  end_time_ = std::chrono::steady_clock::now();
}

std::pair<double, double> StepStats::values() {
#ifdef LONGNET_WITH_CUDA
  end_.synchronize();
#endif
  return {host_[0].item<double>(), host_[1].item<double>()};
}

double StepStats::seconds(const StepStats* before) const {
#ifdef LONGNET_WITH_CUDA
  if (end_.isCreated()) return (before ? before->end_ : start_).elapsed_time(end_) / 1e3;
#endif
  return std::chrono::duration<double>(end_time_ - (before ? before->end_time_ : start_time_))
      .count();
}

// ---- PhaseTimer ------------------------------------------------------------------------------

PhaseTimer::PhaseTimer(const c10::Device& d, bool enabled) : device_(d), enabled_(enabled) {
  if (enabled_) sync(), last_ = std::chrono::steady_clock::now();
}

void PhaseTimer::lap(const std::string& name) {
  if (!enabled_) return;
  sync();
  auto now = std::chrono::steady_clock::now();
  parts_.emplace_back(name, std::chrono::duration<double, std::milli>(now - last_).count());
  last_ = now;
}

std::string PhaseTimer::report() const {
  std::string s;
  for (const auto& [n, ms] : parts_) s += n + " " + std::to_string(int(ms)) + " ms, ";
  return s.empty() ? s : s.substr(0, s.size() - 2);
}

void PhaseTimer::sync() const {
  device_sync(device_);
}

// ---- StepTrace -------------------------------------------------------------------------------

StepTrace::~StepTrace() {
  try {
    if (active_)
      finish();
    else if (!path_.empty() && !done_)
      std::cerr << "no trace written: the run ended before step " << first_ + 1 << "\n";
  } catch (const std::exception& e) {
    std::cerr << "trace not written: " << e.what() << "\n";
  }
}

void StepTrace::at_step(int64_t steps_this_run) {
  if (path_.empty()) return;
  namespace pi = torch::profiler::impl;
  if (steps_this_run == first_) {
    sync();
    const pi::ProfilerConfig config(pi::ProfilerState::KINETO);
    std::set<pi::ActivityType> acts{pi::ActivityType::CPU};
    if (device_.is_cuda()) acts.insert(pi::ActivityType::CUDA);
    torch::autograd::profiler::prepareProfiler(config, acts);
    torch::autograd::profiler::enableProfiler(config, acts);
    active_ = true;
    traced_ = 0;
  } else if (active_ && steps_this_run == first_ + count_) {
    finish();
  }
  if (active_) ++traced_;
}

void StepTrace::finish() {
  sync();
  active_ = false;
  done_ = true;
  torch::autograd::profiler::disableProfiler()->save(path_);
  std::cerr << "trace of " << traced_ << " step(s) written to " << path_ << "\n";
}

void StepTrace::sync() const {
  device_sync(device_);
}

}  // namespace longnet
