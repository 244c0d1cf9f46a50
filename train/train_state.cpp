// Saving and resuming the state of a training job (see train_state.h).
#include "longnet/train/train_state.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/watchdog.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/metrics.h"
#include "longnet/train/schedule.h"

namespace longnet {
namespace {

constexpr const char* kFormat = kTrainStateFormat;

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

}  // namespace

RngStates rng_states_get(const ProcessGrid& grid) {
  return {at::detail::getDefaultCPUGenerator().get_state(), cuda_generator_state(grid)};
}

void rng_states_set(const ProcessGrid& grid, const RngStates& states) {
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  cpu.set_state(states.cpu);
#ifdef LONGNET_WITH_CUDA
  if (grid.device.is_cuda() && states.cuda.defined()) {
    at::Generator cuda = at::cuda::detail::getDefaultCUDAGenerator(grid.device.index());
    cuda.set_state(states.cuda);
  }
#endif
}

namespace {

// The model: keys that make a model what it is (the function its parameters compute), as
// "key: value" lines: all but dropout and activation checkpointing, which change how a step
// runs, not the model, and the segments and rates, which a run may change on purpose to extend
// its context (resuming says so); num_encoder_layers of a decoder-only model, which has none,
// neither.
class ModelIdentity : public OptionVisitor {
 public:
  std::vector<std::pair<std::string, std::string>> keys;
  void field(const char* n, int64_t& v, const OptionSpec&) override { add(n, std::to_string(v)); }
  void field(const char* n, double& v, const OptionSpec&) override {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    add(n, buf);
  }
  void field(const char* n, bool& v, const OptionSpec&) override { add(n, v ? "true" : "false"); }
  void field(const char* n, std::string& v, const OptionSpec&) override { add(n, v); }
  void field(const char* n, std::vector<int64_t>& v, const OptionSpec&) override {
    std::string t;
    for (auto x : v) t += (t.empty() ? "" : ", ") + std::to_string(x);
    add(n, "[" + t + "]");
  }
  void field(const char* n, std::vector<double>& v, const OptionSpec& s) override {
    std::string t;
    for (auto x : v) {
      double y = x;
      field(n, y, s);
      t += (t.empty() ? "" : ", ") + keys.back().second;
      keys.pop_back();
    }
    add(n, "[" + t + "]");
  }

 private:
  void add(const std::string& name, const std::string& value) {
    if (name == "dropout" || name == "activation_checkpointing" || name == "checkpoint_layers" ||
        name == "segment_lengths" || name == "dilation_rates")
      return;
    keys.emplace_back("model." + name, value);
  }
};

std::vector<std::pair<std::string, std::string>> model_identity(const TrainConfig& cfg) {
  LongNetLMOptions o = cfg.model;
  if (o.variant == "decoder_only") o.num_encoder_layers = 0;
  ModelIdentity v;
  options_visit(o, v);
  return v.keys;
}

std::string model_identity_text(const TrainConfig& cfg) {
  std::string t;
  for (const auto& [k, v] : model_identity(cfg)) t += k + ": " + v + "\n";
  return t;
}

// The keys of the data, optimiser and training sections, and model.dropout (not the model's
// shape, the grid, the step count or where things are written: those are checked, or free to
// change on resume) whose values differ between two resolved configs: "data.path (A there, B here);
// ...".
std::string config_training_difference(const TrainConfig& there, const TrainConfig& here) {
  auto keys = [](const TrainConfig& c) {
    std::vector<std::pair<std::string, std::string>> out;
    std::istringstream in(config_to_yaml(c));
    std::string section;
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      if (line[0] != ' ') {
        section = line.substr(0, line.find(':'));
        continue;
      }
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const size_t first = line.find_first_not_of(' ');
      const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
      out.push_back({section + "." + line.substr(first, colon - first), value});
    }
    return out;
  };
  static const std::vector<std::string> kWatched = {
      "data.",           "optim.",     "train.seed",   "train.grad_accumulation",
      "train.precision", "train.loss", "model.dropout"};
  const auto a = keys(there), b = keys(here);
  std::string diff;
  for (const auto& [key, value] : b) {
    bool watched = false;
    for (const auto& w : kWatched) watched |= key.rfind(w, 0) == 0;
    if (!watched || key == "data.source" || key == "data.verify") continue;
    for (const auto& [k, v] : a)
      if (k == key && v != value)
        diff += (diff.empty() ? "" : "; ") + key + " (" + v + " there, " + value + " here)";
  }
  return diff;
}

// The run that wrote a checkpoint, as it named itself (resolved where it ran: a relative log.dir
// resolved here could name another folder), else from its config's log.dir (earlier versions).
std::string checkpoint_run(const c10::impl::GenericDict& state, const TrainConfig& its_config) {
  return state.contains("run") && state.at("run").isString() ? state.at("run").toStringRef()
                                                             : train_run_name(its_config.log.dir);
}

// Retention's owner of a checkpoint (checkpoint_files.h): the model its config describes, and
// the run (log.dir) that wrote it, where every run of `ours` (this one and those it continues,
// resume after resume) is this run. A checkpoint without a config that parses belongs to no
// run.
std::string checkpoint_owner(const c10::impl::GenericDict& state,
                             const std::set<std::string>& ours) {
  try {
    if (!state.contains("config")) return "(no config)";
    const TrainConfig c = config_parse(state.at("config").toStringRef(), "checkpoint");
    const std::string run = checkpoint_run(state, c);
    return model_identity_text(c) + kOwnerRun +
           (ours.count(run) ? std::string("this run")
            : run.empty()   ? std::string("it was written by a run without a run folder (an "
                                            "empty log.dir)")
                            : "it was written by the run of log.dir '" + run + "'");
  } catch (const std::exception& e) {
    return std::string("(config unreadable: ") + e.what() + ")";
  }
}

// The step in a checkpoint's file name (step_00000100.ckpt -> 100), -1 for another name.
int64_t step_of_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.size() < 11 || name.compare(0, 5, "step_") != 0 ||
      name.compare(name.size() - 5, 5, ".ckpt") != 0)
    return -1;
  const std::string digits = name.substr(5, name.size() - 10);
  if (digits.empty() || digits.size() > 18 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return std::stoll(digits);
}

// Refuses, before anything is changed, a start that would replace checkpoints in
// checkpoint.dir: this run writes steps after `start_step` there, so a file named for a later
// step (good, damaged or unreadable; a failed read says nothing about what it holds) would be
// overwritten and then deleted by retention. With checkpoint.resume "none" every checkpoint
// there is another run's. Rank 0 looks; every rank throws the same message.
void replace_guard(ProcessGrid& grid, const TrainConfig& cfg, int64_t start_step,
                   const std::string& resumed) {
  std::string problem;
  if (grid.world_rank == 0) {
    const auto& dir = cfg.checkpoint.dir;
    const auto existing = checkpoint_list(dir);  // newest first
    const auto blockers = checkpoint_name_blockers(dir);
    if (!blockers.empty()) {
      problem = "checkpoint.dir '" + dir + "' holds '" + blockers.front() + "', " +
                path_kind_text(blockers.front()) +
                " with a checkpoint's name: writing a checkpoint there would fail after the "
                "training it saves. Remove or rename it (longnet writes only regular files "
                "named step_N.ckpt), or give another checkpoint.dir. Nothing was changed";
    } else if (cfg.checkpoint.resume == "none" && !existing.empty()) {
      problem = "checkpoint.resume is none, but checkpoint.dir '" + dir + "' already holds " +
                std::to_string(existing.size()) +
                " checkpoint(s) (newest: " + existing.front().second +
                "): a new run there would replace and delete them. Give a new run its own "
                "checkpoint.dir (and log.dir), or continue that run with checkpoint.resume: "
                "auto. Nothing was changed";
    } else if (!resumed.empty() && !existing.empty() && !path_inside(resumed, dir)) {
      problem = "checkpoint.dir '" + dir + "' holds " + std::to_string(existing.size()) +
                " checkpoint(s) (newest: " + existing.front().second +
                "), while this run resumes from " + resumed +
                (path_is_symlink(resumed) ? " (a symbolic link to " + path_resolve(resumed) + ")"
                                          : std::string()) +
                ", outside it: retention (checkpoint.keep) would count them as this run's and "
                "delete them, whichever run made them. Give this run an empty checkpoint.dir "
                "(and its own log.dir), or put the checkpoint to resume from into that directory "
                "and resume there (checkpoint.resume: auto). Nothing was changed";
    } else {
      for (const auto& [step, path] : existing) {
        if (step <= start_step) break;
        if (path == resumed) continue;
        std::string state = "it reads back as a good checkpoint";
        try {
          checkpoint_read(path);
        } catch (const std::exception& e) {
          state = e.what();
          const size_t nl = state.find('\n');
          if (nl != std::string::npos) state.resize(nl);
        }
        problem = "checkpoint.dir '" + dir + "' holds " + path + ", after step " +
                  std::to_string(start_step) + " where this run starts" +
                  (resumed.empty() ? "" : " (from " + resumed + ")") +
                  "; training on would replace it (" + state +
                  "). Resume from it if it is good (checkpoint.resume: auto, or its path), or "
                  "move it out of the directory (e.g. to inspect it). Nothing was changed";
        break;
      }
    }
  }
  problem = world_broadcast(grid, problem, 0);
  TORCH_CHECK(problem.empty(), problem);
}

// The checkpoint to resume from, the same on every rank; "" when there is none.
std::string resume_path(ProcessGrid& grid, const TrainConfig& cfg) {
  const auto& mode = cfg.checkpoint.resume;
  if (mode == "none") return "";
  if (mode != "auto") return mode;  // a path (a mode in the wrong case: config_check refuses it)
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

// A run as the checkpoints' "run" and "runs" name it (train_state.h).
std::string train_run_name(const std::string& log_dir) {
  if (log_dir.empty()) return "";
  std::string escaped;  // a backslash doubled, so that printable_text's \xNN stay unambiguous
  for (const char c : path_resolve(log_dir))
    escaped += c == '\\' ? std::string("\\\\") : std::string(1, c);
  return printable_text(escaped);
}

void train_state_save(ProcessGrid& grid, const TrainConfig& cfg, const NamedTensors& params,
                      const AdamW& optim, const TrainProgress& progress,
                      const RecordedTokenizer& tokenizer) {
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
    state.insert("eval_pending", progress.eval_pending);
    if (progress.eval_pending && !progress.pending_row.empty())
      state.insert("pending_row", progress.pending_row);
    if (!progress.data_fingerprint.empty())
      state.insert("data_fingerprint", progress.data_fingerprint);
    if (!tokenizer.spec.empty()) {
      state.insert("tokenizer", tokenizer.spec);
      state.insert("tokenizer_hash", tokenizer.hash);
    }
    state.insert("grid", std::vector<int64_t>{grid.data_parallel, grid.sequence_parallel});
    std::set<std::string> ours(progress.runs.begin(), progress.runs.end());
    const std::string me = progress.run ? *progress.run : train_run_name(cfg.log.dir);
    ours.insert(me);
    state.insert("run", me);
    state.insert("runs", std::vector<std::string>(ours.begin(), ours.end()));
    state.insert("config", config_to_yaml(cfg));
    state.insert("model", model);
    state.insert("optimizer", opt);
    state.insert("rng_cpu", rng_cpu);
    if (rng_cuda.defined()) state.insert("rng_cuda", rng_cuda);
    checkpoint_write(cfg.checkpoint.dir, progress.step, state,
                     static_cast<int>(cfg.checkpoint.keep),
                     [&](const c10::impl::GenericDict& s) { return checkpoint_owner(s, ours); });
    log_info("checkpoint: " + checkpoint_path(cfg.checkpoint.dir, progress.step));
  }
  // The other ranks wait here while rank 0 writes: a minute and 10 MB/s of the checkpoint's size
  // beyond the collective timeout (a large model on slow storage is not a stalled rank).
  double bytes = 0;
  for (const auto& [name, p] : params) bytes += 3.0 * double(p.numel()) * double(p.element_size());
  CollectiveAllowance slow_write(60 + bytes / 10e6,
                                 "waiting for rank 0 to write checkpoint " +
                                     checkpoint_path(cfg.checkpoint.dir, progress.step));
  grid.world->barrier();
}

namespace {
TrainProgress resume_from(ProcessGrid& grid, const TrainConfig& cfg, const NamedTensors& params,
                          AdamW& optim, const std::string& path);
}  // namespace

void train_state_start_guard(ProcessGrid& grid, const TrainConfig& cfg) {
  if (cfg.checkpoint.resume == "none") replace_guard(grid, cfg, -1, "");
}

std::optional<TrainProgress> train_state_resume(ProcessGrid& grid, const TrainConfig& cfg,
                                                const NamedTensors& params, AdamW& optim) {
  const std::string path = resume_path(grid, cfg);
  if (path.empty()) {
    replace_guard(grid, cfg, -1, "");
    return std::nullopt;
  }
  try {
    return resume_from(grid, cfg, params, optim, path);
  } catch (const c10::Error& e) {
    // An entry of another type than longnet writes (a file made elsewhere whose CRC-32 still
    // holds) surfaces from LibTorch as an internal assertion: say what it is instead.
    const std::string what = e.what_without_backtrace();
    if (what.find("INTERNAL ASSERT FAILED") == std::string::npos) throw;
    const size_t expected = what.find("Expected");
    throw std::runtime_error(
        "checkpoint " + path +
        ": an entry holds a value of another type than `longnet train` "
        "writes (" +
        (expected == std::string::npos
             ? std::string("a type mismatch")
             : what.substr(expected, what.find('\n', expected) - expected)) +
        "); it was not written by `longnet train`. Nothing was changed on disk");
  }
}

namespace {
TrainProgress resume_from(ProcessGrid& grid, const TrainConfig& cfg, const NamedTensors& params,
                          AdamW& optim, const std::string& path) {
  // Every rank reads the file rank 0 chose; one that cannot (a checkpoint.dir on a disk of
  // rank 0's host only, say) is told to all before anyone goes on (to write the run folder).
  std::optional<c10::impl::GenericDict> read;
  std::exception_ptr failure;
  std::string why;
  try {
    read = checkpoint_read(path);
  } catch (const std::exception& e) {
    failure = std::current_exception();
    why = e.what();
  }
  // The failing rank named: rank 0 when it failed too (a damaged file fails everywhere, and
  // rank 0's own error says so), else the highest that failed. (rank 0 counts as world_size.)
  const double mine = !failure               ? -1.0
                      : grid.world_rank == 0 ? double(grid.world_size)
                                             : double(grid.world_rank);
  const int top = static_cast<int>(world_max(grid, mine));
  const int bad = top == grid.world_size ? 0 : top;
  if (bad >= 0) {
    if (bad == grid.world_rank && bad == 0) std::rethrow_exception(failure);
    why = world_broadcast(grid, why, bad);
    throw std::runtime_error(
        bad == 0 ? why
                 : "rank " + std::to_string(bad) + " cannot read the checkpoint that rank 0 " +
                       "resumes from (" + why.substr(0, why.find('\n')) +
                       "): every rank reads checkpoint.dir, so it must hold the same files on " +
                       "every host (a shared file system). Nothing was changed");
  }
  auto state = std::move(*read);
  auto get = [&](const char* key) {
    TORCH_CHECK(state.contains(key), "checkpoint ", path, " has no '", key,
                "' entry; it was not written by `longnet train`");
    return state.at(key);
  };
  TORCH_CHECK(get("format").toStringRef() == kFormat, "checkpoint ", path, " has format '",
              get("format").toStringRef(), "', this build reads '", kFormat, "'");
  // The model: the one this run builds, key by key (parameters of equal shapes can belong to
  // another model: other heads, activation or segments).
  std::string stored_checkpoint_dir;        // where the run that wrote it kept its checkpoints
  std::optional<std::string> stored_run;    // and its run folder (train_run_name)
  std::string stored_log_dir;               // its log.dir, as its config names it
  std::optional<OptimConfig> stored_optim;  // its schedule: optimizer and step count
  int64_t stored_steps = 0;
  {
    const auto ours = model_identity(cfg);
    std::vector<std::pair<std::string, std::string>> theirs;
    try {
      const TrainConfig stored = config_parse(get("config").toStringRef(), path + " (config)");
      stored_checkpoint_dir = stored.checkpoint.dir;
      stored_log_dir = stored.log.dir;
      stored_optim = stored.optim;
      stored_steps = stored.train.steps;
      stored_run = checkpoint_run(state, stored);
      theirs = model_identity(stored);
      const auto& a = stored.model.layer.attention;
      const auto& b = cfg.model.layer.attention;
      if (a.segment_lengths != b.segment_lengths || a.dilation_rates != b.dilation_rates)
        log_info("resume: warning: " + path +
                 " was trained with other segment lengths or dilation rates than this run's; "
                 "its parameters continue under this run's attention pattern");
      // checkpoint.dir given alike to two runs of other log.dirs: the second continues the
      // first, and its retention deletes the first's checkpoints. Said before any is.
      if (cfg.checkpoint.resume == "auto" && !stored.log.dir.empty() && !cfg.log.dir.empty() &&
          path_resolve(stored.log.dir) != path_resolve(cfg.log.dir))
        log_info("resume: warning: " + path + " was written by the run of log.dir '" +
                 stored.log.dir + "', and this run (log.dir '" + cfg.log.dir +
                 "') continues it: checkpoint.keep counts its checkpoints in " +
                 cfg.checkpoint.dir +
                 " as this run's. To start a new run instead, give it its own checkpoint.dir "
                 "(left unset, it is log.dir/checkpoints)");
      const std::string changed = config_training_difference(stored, cfg);
      if (!changed.empty())
        log_info("resume: warning: this run's config differs from the one " + path +
                 " was trained with: " + changed +
                 "; training continues with this run's values (the checkpoint keeps its own "
                 "config)");
    } catch (const c10::Error&) {
      throw;
    } catch (const std::exception& e) {
      // A config of an older longnet (a key renamed or a range tightened since): the parameter
      // names and shapes below are still checked.
      log_info("resume: warning: the config in " + path + " does not load in this version (" +
               e.what() + "); only the parameters' names and shapes are checked against it");
    }
    std::string diff;
    for (size_t i = 0; i < ours.size() && i < theirs.size(); ++i)
      if (ours[i] != theirs[i])
        diff += (diff.empty() ? "" : "; ") + ours[i].first + " " + theirs[i].second + " there, " +
                ours[i].second + " here";
    const bool auto_pick = cfg.checkpoint.resume == "auto";
    TORCH_CHECK(
        diff.empty(), "checkpoint ", path, " holds another model than this run's (", diff,
        "). Resume it with the model: section it was trained with (its config is in the "
        "checkpoint",
        stored_log_dir.empty()
            ? std::string()
            : " and in the config.yaml of the run folder that wrote it, '" + stored_log_dir + "'",
        ")",
        auto_pick ? std::string(", or, if that file does not belong in checkpoint.dir '" +
                                cfg.checkpoint.dir +
                                "', move it out (the newest checkpoint left there is then "
                                "resumed) or give checkpoint.resume=PATH of this model's")
                  : std::string(", or resume a checkpoint of this model"),
        ", or start this model in its own checkpoint.dir. Nothing was changed");
  }
  std::vector<int64_t> g;  // (a list of ints, typed or not: checkpoints are pickled untagged)
  TORCH_CHECK(get("grid").isList(), "checkpoint ", path, " has no valid grid entry");
  for (const auto& x : get("grid").toListRef()) {
    TORCH_CHECK(x.isInt(), "checkpoint ", path, " has no valid grid entry");
    g.push_back(x.toInt());
  }
  TORCH_CHECK(g.size() == 2 && g[0] >= 1 && g[1] >= 1 && g[0] <= (int64_t(1) << 20) &&
                  g[1] <= (int64_t(1) << 20),
              "checkpoint ", path, " has no valid grid entry");
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
  // Values: a checkpoint written while the run diverged (or edited since) would resume into
  // steps that are all skipped, and retention would then delete the good checkpoints before it.
  // Checked before anything is changed, each entry named.
  auto values_check = [&](const at::Tensor& t, const std::string& what, bool non_negative) {
    TORCH_CHECK(t.is_floating_point(), "checkpoint ", path, ": ", what, " has dtype ",
                t.scalar_type(), ", not a floating type; it was not written by `longnet train`");
    TORCH_CHECK(at::isfinite(t).all().item<bool>(), "checkpoint ", path, ": ", what,
                " holds NaN or infinite values (the run had diverged when it was written, or the "
                "file was changed); resume from an earlier checkpoint: move this one out of ",
                cfg.checkpoint.dir, ". Nothing was changed");
    TORCH_CHECK(!non_negative || t.numel() == 0 || t.min().item<double>() >= 0, "checkpoint ", path,
                ": ", what,
                " holds negative values (Adam's second moments are squares); it was not "
                "written by `longnet train`. Nothing was changed");
  };
  for (const auto& [name, p] : params)
    values_check(model.at(name).toTensor(), "parameter '" + name + "'", false);
  auto opt_state = get("optimizer").toGenericDict();
  const auto& ps = optim.params();
  for (const auto& p : ps) {
    const std::string name = name_of(params, p);
    TORCH_CHECK(opt_state.contains(name), "checkpoint ", path, " has no optimizer state for '",
                name, "'");
    TORCH_CHECK(opt_state.at(name).isGenericDict(), "checkpoint ", path,
                ": the optimizer state of '", name,
                "' is not a dictionary; it was not written "
                "by `longnet train`");
    const auto s = opt_state.at(name).toGenericDict();
    for (const char* key : {"exp_avg", "exp_avg_sq"}) {
      const std::string what = std::string("optimizer state '") + key + "' of '" + name + "'";
      TORCH_CHECK(s.contains(key) && s.at(key).isTensor(), "checkpoint ", path, " has no ", what,
                  "; it was not written by `longnet train`");
      const at::Tensor t = s.at(key).toTensor();
      TORCH_CHECK(t.sizes() == p.sizes(), "checkpoint ", path, ": ", what, " has shape ", t.sizes(),
                  " but the parameter's is ", p.sizes(), "; it was not written by `longnet train`");
      values_check(t, what, std::string(key) == "exp_avg_sq");
    }
    TORCH_CHECK(s.contains("step") && (s.at("step").isDouble() || s.at("step").isInt()) &&
                    std::isfinite(s.at("step").toScalar().toDouble()) &&
                    s.at("step").toScalar().toDouble() >= 0,
                "checkpoint ", path, ": the optimizer step count of '", name,
                "' is missing or not a count; it was not written by `longnet train`");
  }
  // The generators' states: one row per rank of the grid that wrote it, of this build's size.
  const int64_t world_there = g[0] * g[1];
  auto rng_check = [&](const char* key, int64_t bytes) {
    const c10::IValue v = get(key);
    TORCH_CHECK(v.isTensor(), "checkpoint ", path, ": its '", key,
                "' entry is not a tensor; it was not written by `longnet train`");
    const at::Tensor t = v.toTensor();
    TORCH_CHECK(t.scalar_type() == at::kByte && t.dim() == 2 && t.size(0) == world_there &&
                    (bytes < 0 || t.size(1) == bytes),
                "checkpoint ", path, ": its '", key, "' entry has shape ", t.sizes(), " and dtype ",
                t.scalar_type(), ", not one generator state (",
                bytes < 0 ? std::string("bytes") : std::to_string(bytes) + " bytes",
                ") for each of the ", world_there,
                " ranks of its grid; it was not written by `longnet train`");
  };
  // (the size and the contents matter only where the states are used: on the same grid)
  rng_check("rng_cpu",
            same_grid ? at::detail::getDefaultCPUGenerator().get_state().numel() : int64_t(-1));
  if (state.contains("rng_cuda")) {
    const at::Tensor mine = cuda_generator_state(grid);  // (undefined off the GPU)
    rng_check("rng_cuda", same_grid && mine.defined() ? mine.numel() : -1);
  }
  if (same_grid) {  // every rank's row, on a scratch generator: no rank fails alone later
    const at::Tensor rows = get("rng_cpu").toTensor();
    at::Generator scratch = at::detail::createCPUGenerator();
    for (int64_t r = 0; r < rows.size(0); ++r) try {
        scratch.set_state(rows[r].clone());
      } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        TORCH_CHECK(false, "checkpoint ", path, ": its generator state of rank ", r,
                    " (rng_cpu) is not one a generator accepts (", what.substr(0, what.find('\n')),
                    "); it was not written by `longnet train`. Nothing was changed on disk");
      }
  }
  auto count = [&](const char* key) {
    const c10::IValue v = get(key);
    TORCH_CHECK(v.isInt() && v.toInt() >= 0, "checkpoint ", path, ": its '", key,
                "' entry is not a count (", v.isInt() ? std::to_string(v.toInt()) : v.tagKind(),
                "); it was not written by `longnet train`");
    return v.toInt();
  };
  TrainProgress progress;
  progress.step = count("step");
  progress.bad_steps = count("bad_steps");
  progress.samples = count("samples");
  TORCH_CHECK(progress.bad_steps <= progress.step, "checkpoint ", path, ": its bad_steps (",
              progress.bad_steps, ") exceeds its step (", progress.step,
              "); it was not written by `longnet train`");
  if (state.contains("eval_pending")) {  // (absent from checkpoints of earlier versions)
    const c10::IValue v = get("eval_pending");
    TORCH_CHECK(v.isBool(), "checkpoint ", path, ": its 'eval_pending' entry is not a bool (",
                v.tagKind(), "); it was not written by `longnet train`");
    progress.eval_pending = v.toBool();
  }
  if (progress.eval_pending && state.contains("pending_row")) {
    const c10::IValue v = get("pending_row");
    TORCH_CHECK(v.isString() && JsonLine::is_object_text(v.toStringRef()), "checkpoint ", path,
                ": its 'pending_row' entry is not a metrics row; it was not written by "
                "`longnet train`");
    progress.pending_row = v.toStringRef();
  }
  if (state.contains("data_fingerprint") && get("data_fingerprint").isString())
    progress.data_fingerprint = get("data_fingerprint").toStringRef();
  progress.checkpoint_dir = stored_checkpoint_dir;
  progress.resumed_from = path;
  // A new step count is how a run is trained further, but it reshapes the learning-rate schedule
  // (its decay runs to the last step): said with the rate the next step now gets.
  if (stored_optim && stored_steps != cfg.train.steps && progress.step < cfg.train.steps) {
    char rates[96];
    std::snprintf(rates, sizeof(rates), "%.3e (%.3e under %lld steps)",
                  lr_at(cfg.optim, progress.step, cfg.train.steps),
                  lr_at(*stored_optim, progress.step, stored_steps),
                  static_cast<long long>(stored_steps));
    log_info("resume: note: train.steps is " + std::to_string(cfg.train.steps) + " here, " +
             std::to_string(stored_steps) + " in " + path +
             ": the learning-rate schedule decays to the new last step, so step " +
             std::to_string(progress.step + 1) + " trains at lr " + rates);
  }
  // The runs it continued (absent from checkpoints of earlier versions), and its own.
  if (state.contains("runs") && get("runs").isList())
    for (const auto& r : get("runs").toListRef())
      if (r.isString()) progress.runs.push_back(r.toStringRef());
  if (stored_run) progress.runs.push_back(*stored_run);
  if (state.contains("tokenizer") && get("tokenizer").isString() &&
      state.contains("tokenizer_hash") && get("tokenizer_hash").isString()) {
    progress.tokenizer = get("tokenizer").toStringRef();
    progress.tokenizer_hash = get("tokenizer_hash").toStringRef();
  }
  const int64_t named = step_of_name(path);
  TORCH_CHECK(named < 0 || named == progress.step, "checkpoint ", path, " holds step ",
              progress.step, " but its name says step ", named,
              " (renamed or copied?): resuming from it would write steps already in its "
              "directory. Rename it step_XXXXXXXX.ckpt after the step it holds, or move it away. "
              "Nothing was changed");
  replace_guard(grid, cfg, progress.step, path);
  const at::Tensor rng_cpu = get("rng_cpu").toTensor();
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, p] : params) p.copy_(model.at(name).toTensor());
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto s = opt_state.at(name_of(params, ps[i])).toGenericDict();
      auto& st = optim.state()[i];
      st.exp_avg.copy_(s.at("exp_avg").toTensor());
      st.exp_avg_sq.copy_(s.at("exp_avg_sq").toTensor());
      st.step.fill_(s.at("step").toScalar().toDouble());
    }
  }
  if (same_grid) try {
      at::Generator cpu = at::detail::getDefaultCPUGenerator();
      cpu.set_state(rng_cpu[grid.world_rank].clone());
#ifdef LONGNET_WITH_CUDA
      if (grid.device.is_cuda() && state.contains("rng_cuda")) {
        at::Generator cuda = at::cuda::detail::getDefaultCUDAGenerator(grid.device.index());
        cuda.set_state(state.at("rng_cuda").toTensor()[grid.world_rank].clone());
      }
#endif
    } catch (const c10::Error& e) {  // bytes of the right size that are no generator's state
      const std::string what = e.what_without_backtrace();
      throw std::runtime_error("checkpoint " + path + ": its generator state (rng_cpu, rng_cuda) " +
                               "is not one a generator accepts (" +
                               what.substr(0, what.find('\n')) +
                               "); it was not written by `longnet train`. Nothing was changed "
                               "on disk");
    }
  else {
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
             "rank)" +
             (g[0] != grid.data_parallel
                  ? "; evaluations score eval.batches batches per data-parallel rank, so " +
                        std::to_string(grid.data_parallel) + " x as many now (against " +
                        std::to_string(g[0]) + " x before): val_loss moves a little with it"
                  : std::string()));
  }
  log_info("resume: " + path + " at step " + std::to_string(progress.step) + ", " +
           std::to_string(progress.samples) + " samples consumed");
  return progress;
}
}  // namespace

}  // namespace longnet
