// The training loop (see trainer.h).
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/nn/functional/loss.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/longnet_model.h"
#include "parallel/mpi_bootstrap.h"
#include "parallel/process_grid.h"
#include "parallel/sequence_parallel_attention.h"
#include "parallel/watchdog.h"
#include "train/adamw.h"
#include "train/checkpoint_files.h"
#include "train/cli_flags.h"
#include "train/config.h"
#include "train/metrics.h"
#include "train/schedule.h"
#include "train/token_data.h"

namespace longnet {
namespace {

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}

constexpr const char* kFormat = "longnet-train-1";

LongNetLMOptions lm_options(const TrainConfig& c) {
  LongNetLMOptions o;
  o.num_tokens = c.model.vocab_size;
  o.d_model = c.model.d_model;
  o.nhead = c.model.num_heads;
  o.num_layers = c.model.num_layers;
  o.num_encoder_layers = c.model.num_encoder_layers;
  o.num_decoder_layers = c.model.num_layers;
  o.dim_feedforward = c.model.dim_feedforward;
  o.segment_lengths = c.model.segment_lengths;
  o.dilation_rates = c.model.dilation_rates;
  o.dropout = c.model.dropout;
  o.activation = c.model.activation;
  o.layer_norm_eps = c.model.layer_norm_eps;
  o.variant = longnet_variant_from_string(c.model.variant);
  o.activation_checkpointing = c.train.activation_checkpointing;
  return o;
}

// A host batch on `device`. A CUDA device gets it from pinned memory without blocking: a copy
// from pageable memory (or a blocking one) waits for the stream to drain, so every microbatch
// would start on an idle GPU that the host then has to fill again. (The pinned block is not
// reused before its copy is done: the caching host allocator records the copy's stream.)
at::Tensor batch_to(const at::Tensor& host, const at::Device& device) {
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

// One step's loss (summed over ranks) and gradient norm, float64, on their way to the host, and
// the step's time. On CUDA the copy is queued behind the step and waited for only when the
// numbers are read, so the host can queue the next step's work first (the GPU then never idles
// while the host logs), and the time is taken by CUDA events: from the end of the step before
// (or this step's start, when the GPU did something else in between) to this step's end.
class StepStats {
 public:
  // Starts step `step` (from 1) on `device`.
  StepStats(int64_t step, const c10::Device& device) : step_(step) {
#ifdef LONGNET_WITH_CUDA
    if (device.is_cuda()) {
      start_.record();
      return;
    }
#endif
    start_time_ = std::chrono::steady_clock::now();
  }
  // The step's work is queued; stats: (2) {loss summed over ranks, grad norm} on the device.
  void queued(double lr, const at::Tensor& stats) {
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
  int64_t step() const {
    return step_;
  }
  double lr() const {
    return lr_;
  }
  // {loss summed over ranks, grad norm}, waiting for the copy.
  std::pair<double, double> values() {
#ifdef LONGNET_WITH_CUDA
    end_.synchronize();
#endif
    return {host_[0].item<double>(), host_[1].item<double>()};
  }
  // Seconds from the end of `before` (null: this step's start) to this step's end, after values().
  double seconds(const StepStats* before) const {
#ifdef LONGNET_WITH_CUDA
    if (end_.isCreated()) return (before ? before->end_ : start_).elapsed_time(end_) / 1e3;
#endif
    return std::chrono::duration<double>(end_time_ - (before ? before->end_time_ : start_time_))
        .count();
  }

 private:
  int64_t step_;
  double lr_ = 0;
  at::Tensor host_;  // (2) float64
#ifdef LONGNET_WITH_CUDA
  at::cuda::CUDAEvent start_{cudaEventDefault}, end_{cudaEventDefault};  // timing events
#endif
  std::chrono::steady_clock::time_point start_time_, end_time_;
};

// Host-side agreement across the world (flags, scalars).
double world_max(double x) {
  CollectiveScope watched(
      collective_what("MPI", "all-reduce of the step's flags", mpi_world_rank(), mpi_world_size()));
  MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return x;
}

// Sums `values` over the world (device tensors go through the world communicator).
at::Tensor world_sum(Communicator& world, at::Tensor values) {
  world.all_reduce(values, ReduceOp::kSum)->wait();
  return values;
}

// Gradients summed over every rank (data and sequence parallel ranks hold the same parameters)
// and divided by the world size: buckets of about 32M elements, all issued before the first
// wait so the transfers queue back to back on the communicator's stream.
void grads_all_reduce(const std::vector<at::Tensor>& params, Communicator& world) {
  if (world.size() == 1) return;  // nothing to sum: no copies into buckets and back
  constexpr int64_t kBucket = 32 << 20;
  std::vector<std::vector<at::Tensor>> buckets(1);
  int64_t filled = 0;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    if (filled > 0 && filled + p.numel() > kBucket) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(p.grad());
    filled += p.numel();
  }
  std::vector<at::Tensor> flats;
  std::vector<std::unique_ptr<CommWork>> works;
  for (auto& b : buckets) {
    if (b.empty()) continue;
    std::vector<at::Tensor> views;
    for (const auto& g : b) views.push_back(g.reshape({-1}));
    flats.push_back(at::cat(views));
    works.push_back(world.all_reduce(flats.back(), ReduceOp::kSum));
  }
  const double inv = 1.0 / world.size();
  for (size_t i = 0, bi = 0; i < buckets.size(); ++i) {
    if (buckets[i].empty()) continue;
    works[bi]->wait();
    int64_t offset = 0;
    for (auto& g : buckets[i]) {
      g.copy_(flats[bi].narrow(0, offset, g.numel()).view_as(g)).mul_(inv);
      offset += g.numel();
    }
    ++bi;
  }
}

// FLOPs of one training step: 6 x matmul parameters x tokens, plus the dilated attention
// (forward by DESIGN.md 7, backward 2.5 x forward) of every layer.
double step_flops(const TrainConfig& c, int64_t tokens_per_step, int64_t global_batch,
                  int64_t matmul_params) {
  const int64_t layers = c.model.num_layers + c.model.num_encoder_layers;
  const int64_t D = c.model.d_model / c.model.num_heads;
  const double attn = dilated_forward_flops(global_batch, c.data.seq_len, c.model.num_heads, D,
                                            c.model.segment_lengths, c.model.dilation_rates, true);
  return 6.0 * double(matmul_params) * double(tokens_per_step) + 3.5 * attn * layers;
}

// Peak GPU memory allocated by this process so far, GiB (0 on the CPU).
double peak_gib() {
#ifdef LONGNET_WITH_CUDA
  if (at::cuda::is_available()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(at::cuda::current_device());
    return double(stats.allocated_bytes[0].peak) / double(1ull << 30);
  }
#endif
  return 0;
}

std::string hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", (long long)(s / 3600),
                (long long)(s / 60 % 60), (long long)(s % 60));
  return buf;
}

// All ranks' generator states, gathered (for checkpoints): (world, state bytes).
at::Tensor gather_bytes(const at::Tensor& mine) {
  auto flat = mine.contiguous().view(at::kByte).reshape({-1});
  const int n = static_cast<int>(flat.numel());
  auto all = at::empty({mpi_world_size(), n}, at::kByte);
  CollectiveScope watched(collective_what("MPI", "all-gather of the generator states",
                                          mpi_world_rank(), mpi_world_size()));
  LONGNET_CHECK_MPI(
      MPI_Allgather(flat.data_ptr(), n, MPI_BYTE, all.data_ptr(), n, MPI_BYTE, MPI_COMM_WORLD));
  return all;
}

// Wall time of the phases of one step, the device synchronised at each lap (profiling only:
// it stalls the pipeline).
class Timer {
 public:
  Timer(const c10::Device& d, bool enabled) : device_(d), enabled_(enabled) {
    if (enabled_) sync(), last_ = std::chrono::steady_clock::now();
  }
  bool enabled() const { return enabled_; }
  void lap(const std::string& name) {
    if (!enabled_) return;
    sync();
    auto now = std::chrono::steady_clock::now();
    parts_.emplace_back(name, std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
  }
  std::string report() const {
    std::string s;
    for (const auto& [n, ms] : parts_) s += n + " " + std::to_string(int(ms)) + " ms, ";
    return s.empty() ? s : s.substr(0, s.size() - 2);
  }

 private:
  void sync() {
#ifdef LONGNET_WITH_CUDA
    if (device_.is_cuda()) at::cuda::getCurrentCUDAStream(device_.index()).synchronize();
#endif
  }
  c10::Device device_;
  bool enabled_;
  std::chrono::steady_clock::time_point last_;
  std::vector<std::pair<std::string, double>> parts_;
};

// A Kineto trace (CPU ops and CUDA kernels) of some steps of a run, saved as a Chrome trace.
// bench/trace_summary.py sums it up per kernel. A run that ends inside the window saves what it
// traced; one that ends before it says so.
class StepTrace {
 public:
  StepTrace(std::string path, c10::Device device) : path_(std::move(path)), device_(device) {}
  StepTrace(const StepTrace&) = delete;
  StepTrace& operator=(const StepTrace&) = delete;
  ~StepTrace() {
    try {
      if (active_)
        finish();
      else if (!path_.empty() && !done_)
        std::cerr << "no trace written: the run ended before step " << kFirst + 1 << "\n";
    } catch (const std::exception& e) {
      std::cerr << "trace not written: " << e.what() << "\n";
    }
  }
  // Called at the start of each step of this run (0-based): traces steps [kFirst, kFirst + kSteps).
  void at_step(int64_t steps_this_run) {
    if (path_.empty()) return;
    namespace pi = torch::profiler::impl;
    if (steps_this_run == kFirst) {
      sync();
      const pi::ProfilerConfig config(pi::ProfilerState::KINETO);
      std::set<pi::ActivityType> acts{pi::ActivityType::CPU};
      if (device_.is_cuda()) acts.insert(pi::ActivityType::CUDA);
      torch::autograd::profiler::prepareProfiler(config, acts);
      torch::autograd::profiler::enableProfiler(config, acts);
      active_ = true;
      traced_ = 0;
    } else if (active_ && steps_this_run == kFirst + kSteps) {
      finish();
    }
    if (active_) ++traced_;
  }
  static constexpr int64_t kFirst = 3, kSteps = 2;

 private:
  void finish() {
    sync();
    active_ = false;
    done_ = true;
    torch::autograd::profiler::disableProfiler()->save(path_);
    std::cerr << "trace of " << traced_ << " step(s) written to " << path_ << "\n";
  }
  void sync() const {
#ifdef LONGNET_WITH_CUDA
    if (device_.is_cuda()) at::cuda::getCurrentCUDAStream(device_.index()).synchronize();
#endif
  }
  std::string path_;
  c10::Device device_;
  bool active_ = false, done_ = false;
  int64_t traced_ = 0;
};

class Trainer {
 public:
  Trainer(TrainConfig cfg, std::string config_path, int64_t stop_after,
          std::vector<int64_t> nan_steps, int64_t profile_steps)
      : cfg_(std::move(cfg)),
        config_path_(std::move(config_path)),
        stop_after_(stop_after),
        nan_steps_(std::move(nan_steps)),
        profile_steps_(profile_steps) {}

  int run();
  int64_t debug_sleep_after = 0;
  int64_t debug_stall_rank = -1, debug_stall_at = -1;
  std::string trace_path;

 private:
  void setup();
  void data_setup();
  void model_setup();
  void resume();
  void checkpoint(int64_t next_step);
  double evaluate();
  bool log_now(int64_t step) const { return step % cfg_.log.interval == 0; }
  // The name of a parameter of the model (for optimizer state in checkpoints).
  const std::string& name_of(const at::Tensor& p) const {
    for (const auto& [name, q] : named_params_)
      if (q.is_same(p)) return name;
    TORCH_INTERNAL_ASSERT(false, "parameter not in the model");
  }

  TrainConfig cfg_;
  std::string config_path_;
  int64_t stop_after_;
  std::vector<int64_t> nan_steps_;
  int64_t profile_steps_;

  std::shared_ptr<ProcessGrid> grid_;
  std::unique_ptr<TokenFile> data_;
  std::unique_ptr<TokenSampler> sampler_;
  LongNetLM model_{nullptr};
  std::unique_ptr<AdamW> optim_;
  std::unique_ptr<SequenceParallelAttention> attention_;
  std::unique_ptr<MetricsWriter> metrics_;
  std::vector<std::pair<std::string, at::Tensor>> named_params_;
  int64_t step_ = 0, bad_steps_ = 0, matmul_params_ = 0;
  bool bf16_ = false;
};

void Trainer::setup() {
  const int world = mpi_world_size();
  config_check(cfg_, world);
  TORCH_CHECK(!cfg_.train.activation_checkpointing || cfg_.model.variant == "decoder_only",
              "train.activation_checkpointing is supported for model.variant decoder_only; "
              "turn it off for encoder_decoder");
  const auto device = cfg_.device == "cuda" ? c10::kCUDA : c10::kCPU;
  collective_timeout_set(cfg_.train.collective_timeout_s);
  grid_ = process_grid_create(static_cast<int>(config_data_parallel(cfg_, world)),
                              static_cast<int>(cfg_.grid.sequence_parallel), device);
  bf16_ = cfg_.train.precision == "bf16";
  log_info("longnet train: " + std::to_string(world) + " rank(s), grid " +
           std::to_string(grid_->data_parallel) + " data x " +
           std::to_string(grid_->sequence_parallel) + " sequence parallel, device " +
           grid_->device.str() + (config_path_.empty() ? "" : ", config " + config_path_));
  log_info("resolved config:\n" + config_to_yaml(cfg_));
}

void Trainer::data_setup() {
  const std::string& path = cfg_.data.path;
  if (grid_->world_rank == 0 && ::access(path.c_str(), F_OK) != 0) {
    TORCH_CHECK(!cfg_.data.source.empty(), "data.path '", path,
                "' does not exist and "
                "data.source is empty; run `longnet data build SRC_DIR ",
                path, "` first");
    log_info("data: " + path + " missing; building it from " + cfg_.data.source);
    // 2% for validation: long contexts need validation sequences of data.seq_len tokens.
    data_build(cfg_.data.source, path, 0.02);
  }
  grid_->world->barrier();
  data_ = std::make_unique<TokenFile>(path);
  SamplerOptions so;
  so.seq_len = cfg_.data.seq_len;
  so.batch_size = cfg_.data.batch_size;
  so.dp_size = grid_->data_parallel;
  so.dp_index = grid_->dp_index;
  so.sp_size = grid_->sequence_parallel;
  so.sp_index = grid_->sp_index;
  so.seed = static_cast<uint64_t>(cfg_.train.seed);
  so.val_batches = cfg_.eval.batches;
  sampler_ = std::make_unique<TokenSampler>(*data_, so);
  log_info("data: " + path + " (" + std::to_string(data_->train().size()) + " training, " +
           std::to_string(data_->val().size()) + " validation tokens)");
}

void Trainer::model_setup() {
  at::manual_seed(cfg_.train.seed);  // the same initial parameters on every rank
  model_ = LongNetLM(lm_options(cfg_));
  model_->to(grid_->device);
  for (const auto& p : model_->named_parameters()) named_params_.push_back({p.key(), p.value()});
  // Every rank starts from rank 0's parameters, whatever its generator did.
  for (auto& [name, p] : named_params_) {
    torch::NoGradGuard no_grad;
    grid_->world->broadcast(p.data(), 0);
  }
  // Dropout masks differ per rank from here on.
  at::manual_seed(cfg_.train.seed + 1 + grid_->world_rank);

  // Weight decay on matrices only (not on biases, norms).
  std::vector<at::Tensor> decay, no_decay;
  int64_t total = 0, matmul = 0;
  for (auto& [name, p] : named_params_) {
    total += p.numel();
    if (p.dim() >= 2) {
      decay.push_back(p);
      if (name.find("embedding") == std::string::npos) matmul += p.numel();
    } else {
      no_decay.push_back(p);
    }
  }
  matmul_params_ = matmul;
  optim_ = std::make_unique<AdamW>(
      std::vector<AdamW::Group>{{decay, cfg_.optim.weight_decay}, {no_decay, 0.0}},
      cfg_.optim.betas[0], cfg_.optim.betas[1], cfg_.optim.eps);
  attention_ = std::make_unique<SequenceParallelAttention>(grid_);
  std::ostringstream s;
  s << "model: " << cfg_.model.variant << ", " << total << " parameters (" << matmul
    << " in matmuls), d_model " << cfg_.model.d_model << ", " << cfg_.model.num_layers
    << " layers, " << cfg_.model.num_heads << " heads, precision " << cfg_.train.precision
    << (cfg_.train.activation_checkpointing ? ", activation checkpointing" : "");
  log_info(s.str());
}

void Trainer::resume() {
  const auto& mode = cfg_.checkpoint.resume;
  if (mode == "none") return;
  std::string path;
  if (mode == "auto") {
    // Rank 0 picks; everyone loads the same file.
    int64_t len = 0;
    std::string found;
    if (grid_->world_rank == 0) {
      auto latest = checkpoint_latest(cfg_.checkpoint.dir);
      if (latest) found = *latest;
      len = static_cast<int64_t>(found.size());
    }
    {
      CollectiveScope watched(collective_what("MPI", "broadcast of the checkpoint to resume",
                                              grid_->world_rank, grid_->world_size));
      MPI_Bcast(&len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
      found.resize(len);
      MPI_Bcast(found.data(), static_cast<int>(len), MPI_CHAR, 0, MPI_COMM_WORLD);
    }
    if (found.empty()) {
      // Checkpoints that exist but none of which verifies: stop rather than start over beside
      // them (a new run would write over their steps).
      const auto existing = checkpoint_list(cfg_.checkpoint.dir);
      TORCH_CHECK(existing.empty(), "resume: ", existing.size(), " checkpoint(s) in ",
                  cfg_.checkpoint.dir,
                  " but none reads back intact (newest: ", existing.front().second,
                  "); see the warnings above. Nothing was changed. "
                  "Move them away to start over, or set checkpoint.resume to a good file");
      log_info("resume: no checkpoint in " + cfg_.checkpoint.dir + "; starting from step 0");
      return;
    }
    path = found;
  } else {
    path = mode;
  }
  auto state = checkpoint_read(path);
  auto get = [&](const char* key) {
    TORCH_CHECK(state.contains(key), "checkpoint ", path, " has no '", key,
                "' entry; it was not written by `longnet train`");
    return state.at(key);
  };
  TORCH_CHECK(get("format").toStringRef() == kFormat, "checkpoint ", path, " has format '",
              get("format").toStringRef(), "', this build reads '", kFormat, "'");
  auto grid = get("grid").toIntVector();
  TORCH_CHECK(
      grid.size() == 2 && grid[0] == grid_->data_parallel && grid[1] == grid_->sequence_parallel,
      "checkpoint ", path, " was written with grid ", grid[0], " data x ", grid[1],
      " sequence parallel; this run is ", grid_->data_parallel, " x ", grid_->sequence_parallel,
      ". Resume with the same grid (and mpirun -np ", grid[0] * grid[1],
      "), or start a new run (checkpoint.resume: none or another "
      "checkpoint.dir)");
  // Parameters: names and shapes must match before anything is changed.
  auto params = get("model").toGenericDict();
  for (const auto& [name, p] : named_params_) {
    TORCH_CHECK(params.contains(name), "checkpoint ", path, " has no parameter '", name,
                "': it was written for another model (see its config)");
    const auto& t = params.at(name).toTensor();
    TORCH_CHECK(t.sizes() == p.sizes(), "checkpoint ", path, ": parameter '", name, "' has shape ",
                t.sizes(), " but the model's is ", p.sizes(),
                "; it was written for another model shape");
  }
  TORCH_CHECK(params.size() == named_params_.size(), "checkpoint ", path, " holds ", params.size(),
              " parameters, the model ", named_params_.size());
  auto opt_state = get("optimizer").toGenericDict();
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, p] : named_params_) p.copy_(params.at(name).toTensor());
    const auto& ps = optim_->params();
    for (size_t i = 0; i < ps.size(); ++i) {
      const std::string& name = name_of(ps[i]);
      TORCH_CHECK(opt_state.contains(name), "checkpoint ", path, " has no optimizer state for '",
                  name, "'");
      auto s = opt_state.at(name).toGenericDict();
      auto& st = optim_->state()[i];
      st.exp_avg.copy_(s.at("exp_avg").toTensor());
      st.exp_avg_sq.copy_(s.at("exp_avg_sq").toTensor());
      st.step.fill_(s.at("step").toDouble());
    }
  }
  step_ = get("step").toInt();
  bad_steps_ = get("bad_steps").toInt();
  sampler_->set_position(get("samples").toInt());
  auto rng_cpu = get("rng_cpu").toTensor();
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  cpu.set_state(rng_cpu[grid_->world_rank].clone());
#ifdef LONGNET_WITH_CUDA
  if (grid_->device.is_cuda() && state.contains("rng_cuda")) {
    at::Generator cuda = at::cuda::detail::getDefaultCUDAGenerator(grid_->device.index());
    cuda.set_state(state.at("rng_cuda").toTensor()[grid_->world_rank].clone());
  }
#endif
  log_info("resume: " + path + " at step " + std::to_string(step_) + ", " +
           std::to_string(sampler_->position()) + " samples consumed");
}

void Trainer::checkpoint(int64_t next_step) {
  // Every rank takes part (generator states are gathered); rank 0 writes.
  auto rng_cpu = gather_bytes(at::detail::getDefaultCPUGenerator().get_state());
  at::Tensor rng_cuda;
#ifdef LONGNET_WITH_CUDA
  if (grid_->device.is_cuda())
    rng_cuda =
        gather_bytes(at::cuda::detail::getDefaultCUDAGenerator(grid_->device.index()).get_state());
#endif
  if (grid_->world_rank == 0) {
    c10::impl::GenericDict state(c10::StringType::get(), c10::AnyType::get());
    c10::impl::GenericDict params(c10::StringType::get(), c10::TensorType::get());
    c10::impl::GenericDict opt(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [name, p] : named_params_) params.insert(name, p.detach().cpu());
    const auto& ps = optim_->params();
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto& st = optim_->state()[i];
      c10::impl::GenericDict s(c10::StringType::get(), c10::AnyType::get());
      s.insert("step", st.step.item<double>());
      s.insert("exp_avg", st.exp_avg.cpu());
      s.insert("exp_avg_sq", st.exp_avg_sq.cpu());
      opt.insert(name_of(ps[i]), s);
    }
    state.insert("format", std::string(kFormat));
    state.insert("step", next_step);
    state.insert("samples", sampler_->position());
    state.insert("bad_steps", bad_steps_);
    state.insert("grid", std::vector<int64_t>{grid_->data_parallel, grid_->sequence_parallel});
    state.insert("config", config_to_yaml(cfg_));
    state.insert("model", params);
    state.insert("optimizer", opt);
    state.insert("rng_cpu", rng_cpu);
    if (rng_cuda.defined()) state.insert("rng_cuda", rng_cuda);
    checkpoint_write(cfg_.checkpoint.dir, next_step, state, static_cast<int>(cfg_.checkpoint.keep));
    log_info("checkpoint: " + checkpoint_path(cfg_.checkpoint.dir, next_step));
  }
  grid_->world->barrier();
}

double Trainer::evaluate() {
  model_->eval();
  torch::NoGradGuard no_grad;
  auto sums = at::zeros({2}, at::TensorOptions().dtype(at::kDouble).device(grid_->device));
  for (int64_t i = 0; i < cfg_.eval.batches; ++i) {
    auto batch = sampler_->val_batch(i);
    auto inputs = batch_to(batch.inputs, grid_->device),
         targets = batch_to(batch.targets, grid_->device);
    at::Tensor logits;
    {
      at::autocast::set_autocast_enabled(at::kCUDA, bf16_);
      logits = model_->forward(inputs, *attention_);
      at::autocast::set_autocast_enabled(at::kCUDA, false);
    }
    auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}).to(at::kFloat), targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    sums[0] += loss.to(at::kDouble);
    sums[1] += double(targets.numel());
  }
  world_sum(*grid_->world, sums);
  model_->train();
  auto s = sums.cpu();
  return s[0].item<double>() / s[1].item<double>();
}

int Trainer::run() {
  setup();
  data_setup();
  model_setup();
  resume();
  if (grid_->world_rank == 0) metrics_ = std::make_unique<MetricsWriter>(cfg_.log.metrics);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  if (bf16_) at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);

  const int64_t total = cfg_.train.steps, accum = cfg_.train.grad_accumulation;
  const int64_t global_batch = grid_->data_parallel * cfg_.data.batch_size * accum;
  const int64_t tokens_per_step = global_batch * cfg_.data.seq_len;
  const double flops = step_flops(cfg_, tokens_per_step, global_batch, matmul_params_);
  // H100/H200 dense bf16 peak of every GPU of the job (flops counts the whole job's step).
  const double peak = grid_->device.is_cuda() ? 989e12 * grid_->world_size : std::nan("");
  std::vector<at::Tensor> params;
  for (auto& [n, p] : named_params_) params.push_back(p);
  log_info("training: steps " + std::to_string(step_) + " -> " + std::to_string(total) + ", " +
           std::to_string(tokens_per_step) + " tokens per step (" + std::to_string(global_batch) +
           " sequences of " + std::to_string(cfg_.data.seq_len) + ")");
  if (step_ == 0 && cfg_.eval.interval > 0) {
    const double v = evaluate();
    log_info("eval before training: loss " + std::to_string(v) + ", bits per byte " +
             std::to_string(v / std::log(2.0)));
    if (metrics_)
      metrics_->write(
          JsonLine().add("step", int64_t(0)).add("val_loss", v).add("val_bpb", v / std::log(2.0)));
  }

  const auto t_start = std::chrono::steady_clock::now();
  const int64_t first_step = step_;
  int64_t steps_this_run = 0;
  StepTrace trace(trace_path.empty() || grid_->world_size == 1
                      ? trace_path
                      : trace_path + ".rank" + std::to_string(grid_->world_rank),
                  grid_->device);
  // The last step whose numbers the host has not read yet. On CUDA they are read after the next
  // step's forward and backward are queued; at evaluations, checkpoints, stops and on the CPU,
  // at once.
  std::optional<StepStats> pending;
  const bool defer = grid_->device.is_cuda();
  // The step finished before `pending`, if the device went straight on from it to the next step
  // (not after an evaluation or a checkpoint): the next step's time starts at its end.
  std::optional<StepStats> last;
  // Reads the pending step's numbers, counts a bad step (stopping after too many in a row),
  // evaluates if eval_now, and logs.
  auto finish = [&](bool eval_now) {
    StepStats s = std::move(*pending);
    pending.reset();
    const auto [loss_sum, grad_norm] = s.values();
    const double loss = loss_sum / grid_->world_size;
    const double step_s = s.seconds(last ? &*last : nullptr);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    if (finite) {
      bad_steps_ = 0;
    } else {
      ++bad_steps_;
      log_info("step " + std::to_string(s.step()) + ": loss " + std::to_string(loss) +
               ", grad norm " + std::to_string(grad_norm) + " is not finite; step skipped (" +
               std::to_string(bad_steps_) + " in a row, limit " +
               std::to_string(cfg_.train.max_bad_steps) + ")");
      TORCH_CHECK(bad_steps_ < cfg_.train.max_bad_steps, "training stopped: ", bad_steps_,
                  " steps in a row had a non-finite loss or gradient (train.max_bad_steps = ",
                  cfg_.train.max_bad_steps,
                  "); lower optim.lr, check the data, or resume from "
                  "the last checkpoint");
    }
    const double tok_s = tokens_per_step / step_s;
    JsonLine line;
    line.add("step", s.step())
        .add("loss", loss)
        .add("lr", s.lr())
        .add("grad_norm", grad_norm)
        .add("tokens_per_s", tok_s)
        .add("step_ms", step_s * 1e3)
        .add("skipped", !finite);
    if (grid_->device.is_cuda()) line.add("mfu", flops / step_s / peak).add("peak_gib", peak_gib());
    if (eval_now) {
      const double v = evaluate();
      line.add("val_loss", v).add("val_bpb", v / std::log(2.0));
      log_info("eval at step " + std::to_string(s.step()) + ": loss " + std::to_string(v) +
               ", bits per byte " + std::to_string(v / std::log(2.0)));
    }
    if (metrics_) metrics_->write(line);
    if (log_now(s.step()) || s.step() == total || s.step() == first_step + 1) {
      char buf[256];
      const int64_t done = s.step() - first_step;
      const double eta = elapsed / done * (total - s.step());
      std::snprintf(
          buf, sizeof(buf),
          "step %lld/%lld | loss %.4f | lr %.2e | %.0f tok/s | %.0f ms/step%s | ETA %s",
          (long long)s.step(), (long long)total, loss, s.lr(), tok_s, step_s * 1e3,
          grid_->device.is_cuda()
              ? (" | MFU " + std::to_string(int(100 * flops / step_s / peak)) + "%").c_str()
              : "",
          hms(eta).c_str());
      log_info(buf);
    }
    last = std::move(s);
  };
  while (step_ < total) {
    trace.at_step(steps_this_run);
    if (debug_sleep_after > 0 && step_ >= debug_sleep_after) ::usleep(500000);
    if (step_ == debug_stall_at && grid_->world_rank == debug_stall_rank) {
      std::fprintf(stderr, "%sstalling on purpose at step %lld (--debug-stall)\n",
                   log_prefix().c_str(), static_cast<long long>(step_));
      std::fflush(stderr);
      for (;;) ::pause();
    }
    const double lr = lr_at(cfg_.optim, step_, total);
    StepStats current(step_ + 1, grid_->device);
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    Timer prof(grid_->device, profile_steps_ > 0 && steps_this_run < profile_steps_);
    auto loss_sum = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(grid_->device));
    for (int64_t micro = 0; micro < accum; ++micro) {
      auto batch = sampler_->next_batch();
      auto inputs = batch_to(batch.inputs, grid_->device),
           targets = batch_to(batch.targets, grid_->device);
      at::autocast::set_autocast_enabled(at::kCUDA, bf16_);
      auto logits = model_->forward(inputs, *attention_);
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      auto loss = torch::nn::functional::cross_entropy(
          logits.reshape({-1, logits.size(-1)}).to(at::kFloat), targets.reshape({-1}));
      if (std::find(nan_steps_.begin(), nan_steps_.end(), step_) != nan_steps_.end())
        loss = loss * std::nan("");  // --debug-nan-at: a deliberately poisoned step
      prof.lap("forward");
      (loss / double(accum)).backward();
      prof.lap("backward");
      loss_sum += loss.detach() / double(accum);
      if (bf16_) at::autocast::clear_cache();
    }
    if (pending) finish(false);  // the previous step, finished on the GPU by now or soon
    grads_all_reduce(params, *grid_->world);
    world_sum(*grid_->world, loss_sum);
    std::vector<at::Tensor> grads;
    for (const auto& p : params)
      if (p.grad().defined()) grads.push_back(p.grad());
    {
      // The norm, the clipping and the decision to skip a non-finite step all stay on the device.
      torch::NoGradGuard no_grad;
      auto loss_total = loss_sum.reshape({}).to(at::kDouble);
      // One multi-tensor kernel for all the norms.
      auto norm = at::stack(at::_foreach_norm(grads)).to(at::kDouble).norm();
      auto skip =
          at::logical_not(at::isfinite(loss_total).logical_and(at::isfinite(norm))).to(at::kFloat);
      prof.lap("all-reduce + norm");
      const double clip = cfg_.optim.grad_clip;
      if (clip > 0)
        at::_foreach_mul_(grads, at::where(norm > clip, clip / (norm + 1e-6), 1.0).to(at::kFloat));
      optim_->step(lr, skip);
      prof.lap("optimizer");
      current.queued(lr, at::stack({loss_total, norm}));
      pending.emplace(std::move(current));
    }
    if (prof.enabled())
      log_info("profile step " + std::to_string(step_ + 1) + ": " + prof.report());
    ++step_;
    ++steps_this_run;
    const bool stop_signal = world_max(g_signal.load()) > 0;
    const bool stop_here = stop_after_ > 0 && steps_this_run >= stop_after_;
    const bool eval_now = step_ % cfg_.eval.interval == 0 || step_ == total;
    const bool save_now =
        step_ % cfg_.checkpoint.interval == 0 || step_ == total || stop_signal || stop_here;
    if (!defer || eval_now || save_now) finish(eval_now);
    if (save_now) checkpoint(step_);
    if (eval_now || save_now) last.reset();
    if (stop_signal) {
      log_info("stopping on a signal after step " + std::to_string(step_) +
               "; resume with checkpoint.resume: auto");
      return 0;
    }
    if (stop_here) {
      log_info("stopping after " + std::to_string(steps_this_run) + " steps (--stop-after)");
      return 0;
    }
  }
  log_info("training done: " + std::to_string(step_) + " steps" +
           (grid_->device.is_cuda() ? ", peak memory " + std::to_string(peak_gib()) + " GiB" : ""));
  return 0;
}

}  // namespace

int train_command(const std::vector<std::string>& args) {
  CliFlags f("train");
  f.add("stop-after", "0", "stop (with a checkpoint) after this many steps of this run");
  f.add("debug-nan-at", "", "testing aid: poison the loss with NaN at these steps (0-based)");
  f.add("debug-sleep-after", "0",
        "testing aid: after this step, pause 0.5 s per step (time to deliver signals)");
  f.add("debug-stall", "",
        "testing aid: RANK:STEP, that rank stops responding at that step (the collective "
        "watchdog must end the job)");
  f.add("profile", "0", "time forward, backward, all-reduce and optimizer of the first N steps");
  f.add("trace", "",
        "write a Kineto trace (Chrome JSON) of steps 4 and 5 of this run to this path (with "
        ".rankR added when there are several ranks); sum it up with bench/trace_summary.py");
  f.add("check-config", "0",
        "validate the config for a job of this many ranks, print it resolved, and exit");
  f.parse(args);
  if (f.help_requested()) {
    std::cout << "usage: longnet train [CONFIG.yaml] [key=value ...] [flags]\n"
                 "  CONFIG: an experiment config (configs/*.yaml); key=value overrides any key,\n"
                 "  e.g. optim.lr=3e-4 train.steps=100 model.segment_lengths=[64,128]\n"
              << f.usage();
    return 0;
  }
  std::string config_path;
  std::vector<std::string> overrides;
  for (const auto& a : f.positional()) {
    if (a.find('=') != std::string::npos)
      overrides.push_back(a);
    else if (config_path.empty())
      config_path = a;
    else
      throw std::invalid_argument("longnet train: more than one config file given ('" +
                                  config_path + "' and '" + a + "')");
  }
  int64_t stall_rank = -1, stall_at = -1;
  if (const std::string stall = f.get("debug-stall"); !stall.empty()) {
    const auto colon = stall.find(':');
    char *rank_end = nullptr, *step_end = nullptr;
    const long long rank = std::strtoll(stall.c_str(), &rank_end, 10);
    const long long step =
        colon == std::string::npos ? -1 : std::strtoll(stall.c_str() + colon + 1, &step_end, 10);
    if (colon == 0 || colon == std::string::npos || rank_end != stall.c_str() + colon ||
        step_end == stall.c_str() + colon + 1 || *step_end != '\0' || rank < 0 || step < 0)
      throw std::invalid_argument("longnet train: --debug-stall '" + stall +
                                  "' is not RANK:STEP (e.g. 1:3)");
    stall_rank = rank;
    stall_at = step;
  }
  std::vector<int64_t> nan_steps;
  if (!f.get("debug-nan-at").empty()) nan_steps = f.get_int_list("debug-nan-at");
  auto cfg = config_load(config_path, overrides);
  if (const int64_t world = f.get_int("check-config"); world > 0) {
    config_check(cfg, static_cast<int>(world));
    std::cout << "config OK for " << world << " rank(s):\n" << config_to_yaml(cfg);
    return 0;
  }
  mpi_ensure_initialized();
  Trainer t(std::move(cfg), config_path, f.get_int("stop-after"), nan_steps, f.get_int("profile"));
  t.debug_sleep_after = f.get_int("debug-sleep-after");
  t.debug_stall_rank = stall_rank;
  t.debug_stall_at = stall_at;
  t.trace_path = f.get("trace");
  return t.run();
}

}  // namespace longnet
