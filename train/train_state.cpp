// Saving and resuming the state of a training job (see train_state.h).
#include "longnet/train/train_state.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/checkpoint_files.h"

namespace longnet {
namespace {

constexpr const char* kFormat = "longnet-train-1";

// The name of optimizer parameter p among the model's (for optimizer state in checkpoints).
const std::string& name_of(const NamedTensors& params, const at::Tensor& p) {
  for (const auto& [name, q] : params)
    if (q.is_same(p)) return name;
  TORCH_INTERNAL_ASSERT(false, "parameter not in the model");
}

at::Tensor cuda_generator_state(const ProcessGrid& grid) {
#ifdef LONGNET_WITH_CUDA
  if (grid.device.is_cuda())
    return at::cuda::detail::getDefaultCUDAGenerator(grid.device.index()).get_state();
#endif
  return at::Tensor();
}

// The checkpoint to resume from, the same on every rank; "" when there is none.
std::string resume_path(ProcessGrid& grid, const TrainConfig& cfg) {
  const auto& mode = cfg.checkpoint.resume;
  if (mode == "none") return "";
  if (mode != "auto") return mode;
  // Rank 0 picks; everyone loads the same file.
  std::string found;
  if (grid.world_rank == 0) {
    auto latest = checkpoint_latest(cfg.checkpoint.dir);
    if (latest) found = *latest;
  }
  found = world_broadcast(grid, found, 0);
  if (found.empty()) {
    // Checkpoints that exist but none of which verifies: stop rather than start over beside
    // them (a new run would write over their steps).
    const auto existing = checkpoint_list(cfg.checkpoint.dir);
    TORCH_CHECK(existing.empty(), "resume: ", existing.size(), " checkpoint(s) in ",
                cfg.checkpoint.dir,
                " but none reads back intact (newest: ", existing.front().second,
                "); see the warnings above. Nothing was changed. Move them away to start over, "
                "or set checkpoint.resume to a good file");
    log_info("resume: no checkpoint in " + cfg.checkpoint.dir + "; starting from step 0");
  }
  return found;
}

}  // namespace

void train_state_save(ProcessGrid& grid, const TrainConfig& cfg, const NamedTensors& params,
                      const AdamW& optim, const TrainProgress& progress) {
  // Every rank's generator states, gathered: (world, state bytes).
  auto rng_cpu = world_all_gather_bytes(grid, at::detail::getDefaultCPUGenerator().get_state());
  at::Tensor rng_cuda = cuda_generator_state(grid);
  if (rng_cuda.defined()) rng_cuda = world_all_gather_bytes(grid, rng_cuda);
  if (grid.world_rank == 0) {
    c10::impl::GenericDict state(c10::StringType::get(), c10::AnyType::get());
    c10::impl::GenericDict model(c10::StringType::get(), c10::TensorType::get());
    c10::impl::GenericDict opt(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [name, p] : params) model.insert(name, p.detach().cpu());
    const auto& ps = optim.params();
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto& st = optim.state()[i];
      c10::impl::GenericDict s(c10::StringType::get(), c10::AnyType::get());
      s.insert("step", st.step.item<double>());
      s.insert("exp_avg", st.exp_avg.cpu());
      s.insert("exp_avg_sq", st.exp_avg_sq.cpu());
      opt.insert(name_of(params, ps[i]), s);
    }
    state.insert("format", std::string(kFormat));
    state.insert("step", progress.step);
    state.insert("samples", progress.samples);
    state.insert("bad_steps", progress.bad_steps);
    state.insert("grid", std::vector<int64_t>{grid.data_parallel, grid.sequence_parallel});
    state.insert("config", config_to_yaml(cfg));
    state.insert("model", model);
    state.insert("optimizer", opt);
    state.insert("rng_cpu", rng_cpu);
    if (rng_cuda.defined()) state.insert("rng_cuda", rng_cuda);
    checkpoint_write(cfg.checkpoint.dir, progress.step, state,
                     static_cast<int>(cfg.checkpoint.keep));
    log_info("checkpoint: " + checkpoint_path(cfg.checkpoint.dir, progress.step));
  }
  grid.world->barrier();
}

std::optional<TrainProgress> train_state_resume(ProcessGrid& grid, const TrainConfig& cfg,
                                                const NamedTensors& params, AdamW& optim) {
  const std::string path = resume_path(grid, cfg);
  if (path.empty()) return std::nullopt;
  auto state = checkpoint_read(path);
  auto get = [&](const char* key) {
    TORCH_CHECK(state.contains(key), "checkpoint ", path, " has no '", key,
                "' entry; it was not written by `longnet train`");
    return state.at(key);
  };
  TORCH_CHECK(get("format").toStringRef() == kFormat, "checkpoint ", path, " has format '",
              get("format").toStringRef(), "', this build reads '", kFormat, "'");
  std::vector<int64_t> g;  // (a list of ints, typed or not: checkpoints are pickled untagged)
  for (const auto& x : get("grid").toListRef()) g.push_back(x.toInt());
  TORCH_CHECK(g.size() == 2, "checkpoint ", path, " has no valid grid entry");
  // Another grid resumes too: parameters and optimizer state are the same on every rank; the data
  // position is a count of sequences of the whole job; only the generators are per rank.
  const bool same_grid = g[0] == grid.data_parallel && g[1] == grid.sequence_parallel;
  // Parameters: names and shapes must match before anything is changed.
  auto model = get("model").toGenericDict();
  for (const auto& [name, p] : params) {
    TORCH_CHECK(model.contains(name), "checkpoint ", path, " has no parameter '", name,
                "': it was written for another model (see its config)");
    const auto& t = model.at(name).toTensor();
    TORCH_CHECK(t.sizes() == p.sizes(), "checkpoint ", path, ": parameter '", name, "' has shape ",
                t.sizes(), " but the model's is ", p.sizes(),
                "; it was written for another model shape");
  }
  TORCH_CHECK(model.size() == params.size(), "checkpoint ", path, " holds ", model.size(),
              " parameters, the model ", params.size());
  auto opt_state = get("optimizer").toGenericDict();
  const auto& ps = optim.params();
  for (const auto& p : ps)
    TORCH_CHECK(opt_state.contains(name_of(params, p)), "checkpoint ", path,
                " has no optimizer state for '", name_of(params, p), "'");
  TrainProgress progress;
  progress.step = get("step").toInt();
  progress.bad_steps = get("bad_steps").toInt();
  progress.samples = get("samples").toInt();
  const at::Tensor rng_cpu = get("rng_cpu").toTensor();
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, p] : params) p.copy_(model.at(name).toTensor());
    for (size_t i = 0; i < ps.size(); ++i) {
      auto s = opt_state.at(name_of(params, ps[i])).toGenericDict();
      auto& st = optim.state()[i];
      st.exp_avg.copy_(s.at("exp_avg").toTensor());
      st.exp_avg_sq.copy_(s.at("exp_avg_sq").toTensor());
      st.step.fill_(s.at("step").toDouble());
    }
  }
  if (same_grid) {
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    cpu.set_state(rng_cpu[grid.world_rank].clone());
#ifdef LONGNET_WITH_CUDA
    if (grid.device.is_cuda() && state.contains("rng_cuda")) {
      at::Generator cuda = at::cuda::detail::getDefaultCUDAGenerator(grid.device.index());
      cuda.set_state(state.at("rng_cuda").toTensor()[grid.world_rank].clone());
    }
#endif
  } else {
    // No state for these ranks: seeded from (seed, step, rank), so a rerun of this resume is
    // reproducible (dropout masks then differ from an uninterrupted run's).
    at::manual_seed(static_cast<uint64_t>(cfg.train.seed) * 1000003u +
                    static_cast<uint64_t>(progress.step) * 7919u +
                    static_cast<uint64_t>(grid.world_rank) + 1u);
    log_info("resume: " + path + " was written with grid " + std::to_string(g[0]) + " data x " +
             std::to_string(g[1]) + " sequence parallel; this run is " +
             std::to_string(grid.data_parallel) + " x " + std::to_string(grid.sequence_parallel) +
             ": parameters and optimizer state load as they are, the data continues after the " +
             std::to_string(progress.samples) +
             " sequences consumed, and each rank's generator is seeded afresh from (seed, step, "
             "rank)");
  }
  log_info("resume: " + path + " at step " + std::to_string(progress.step) + ", " +
           std::to_string(progress.samples) + " samples consumed");
  return progress;
}

}  // namespace longnet
