// The training loop (see trainer.h).
#include "longnet/train/trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include "longnet/core/autocast_scope.h"
#include "longnet/core/chunked_cross_entropy.h"
#include "longnet/core/device_memory.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/core/file_util.h"
#include "longnet/core/longnet_model.h"
#include "longnet/core/text.h"
#include "longnet/parallel/grad_sync.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_parallel_attention.h"
#include "longnet/parallel/watchdog.h"
#include "longnet/train/adamw.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/crc32.h"
#include "longnet/train/dataset_build.h"
#include "longnet/train/dataset_check.h"
#include "longnet/train/fault_injection.h"
#include "longnet/train/metrics.h"
#include "longnet/train/schedule.h"
#include "longnet/train/step_profile.h"
#include "longnet/train/token_data.h"
#include "longnet/train/token_dataset.h"
#include "longnet/train/token_sampler.h"
#include "longnet/train/tokenizer.h"
#include "longnet/train/train_state.h"

namespace longnet {
namespace {

// A run folder's config.yaml that differs from this run's (a resume with changed keys, or
// another run in the same folder) is kept as config.N.yaml before this run's replaces it: the
// folder keeps saying what earlier steps were trained with.
void config_previous_keep(const std::string& dir, const std::string& yaml) {
  const std::string path = dir + "/config.yaml";
  if (path_kind(path) != PathKind::kFile) return;
  std::ifstream in(path, std::ios::binary);
  std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return;
  if (before == yaml) return;
  const std::string keep = file_keep_numbered(path);
  if (!keep.empty())
    log_info("run folder: its config.yaml (of an earlier start, with other values) kept as " +
             keep);
}

// FLOPs of one training step: 6 x matmul parameters x tokens, plus the dilated attention
// (forward by docs/design.md section 6, backward 2.5 x forward) of every layer.
double step_flops(const TrainConfig& c, int64_t tokens_per_step, int64_t global_batch,
                  int64_t matmul_params) {
  const auto& m = c.model;
  const int64_t layers = m.num_layers + m.num_encoder_layers;
  const int64_t D = m.layer.d_model / m.layer.num_heads;
  const double attn = dilated_forward_flops(global_batch, c.data.seq_len, m.layer.num_heads, D,
                                            m.layer.attention.segment_lengths,
                                            m.layer.attention.dilation_rates, true);
  return 6.0 * double(matmul_params) * double(tokens_per_step) + 3.5 * attn * double(layers);
}

// Cross-entropy of logits (..., V) against targets (...), in float32.
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets, bool sum) {
  auto o = torch::nn::functional::CrossEntropyFuncOptions();
  if (sum) o.reduction(torch::kSum);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(at::kFloat),
                                              targets.reshape({-1}), o);
}

class Trainer {
 public:
  Trainer(TrainConfig cfg, TrainRunOptions run) : cfg_(std::move(cfg)), run_(std::move(run)) {}
  int run();

 private:
  void grid_setup();
  // Before the data is built or read: refuses a run whose model and batch cannot fit in memory,
  // or whose checkpoint.dir has no room for one checkpoint (checkpoint_room_check, asked again
  // once the data is built, which may have taken the room).
  void resources_check();
  void checkpoint_room_check();
  void data_setup();
  void model_setup();
  void loop();
  // Queues one optimizer step (its micro-steps, the all-reduce, clipping, AdamW); the numbers
  // stay on the device in a StepStats until finish_step reads them. nullopt when a stop signal
  // came between two of its micro-steps: the step is dropped (no update; the sampler and the
  // generators back where the step began).
  std::optional<StepStats> train_step();
  // Reads the pending step's numbers, counts a bad step (stopping after too many in a row),
  // evaluates if eval_now, logs and writes its metrics line.
  void finish_step(bool eval_now);
  double evaluate();
  // An evaluation outside the step loop (before training, or the one a stop cut short at the
  // resumed step): logged as "LABEL: loss ..." and written as a metrics row of step_. False when
  // a stop signal ended it (said as "stopping on a signal during STOP_WHAT").
  bool evaluate_now(const std::string& label, const std::string& stop_what);
  // Writes a metrics row (rank 0). A failed write (a full disk) does not end the job there: it
  // is said once, no more rows are written, and the job stops at its next agreement below with a
  // checkpoint saved, then fails with the write's error (metrics_failure_throw).
  void metrics_write(const JsonLine& line);
  // Saves the checkpoint of step_ (every rank), the run folder and checkpoint.dir locked again
  // first where they were removed while the job ran.
  void save(bool eval_interrupted);
  // Every rank: whether a stop signal came to any rank, or rank 0's metrics file failed (then
  // metrics_failed_ is set on every rank). Collective.
  bool stop_agreed();
  // Every rank, after the checkpoint: throws rank 0's metrics error when metrics_failed_.
  void metrics_failure_throw();
  // The name of the run folder's own file that `path` is (config.yaml, an earlier start's
  // config.N.yaml, train.log, and with metrics its metrics.jsonl when log.metrics is empty), ""
  // when it is none of them (or there is no run folder).
  std::string run_folder_own_file(const std::string& path, bool metrics) const {
    if (cfg_.log.dir.empty()) return "";
    const std::string dir = path_resolve(cfg_.log.dir), p = path_resolve(path);
    if (dir.empty() || p.rfind(dir + "/", 0) != 0) return "";
    const std::string rel = p.substr(dir.size() + 1);
    const bool config_file = rel.rfind("config.", 0) == 0 && rel.size() > 12 &&
                             rel.compare(rel.size() - 5, 5, ".yaml") == 0;
    const bool own_metrics = metrics && cfg_.log.metrics.empty() && rel == "metrics.jsonl";
    return rel == "train.log" || rel == "config.yaml" || config_file || own_metrics ? rel : "";
  }
  // The checkpoint.dir of the run folder's config.yaml when it is another run's than the one
  // resumed, which wrote its checkpoints to `ours` (and writes the same metrics file); "" when
  // it is that run's (also when its checkpoints were moved since), or cannot be told.
  std::string run_folder_other_checkpoints(const std::string& ours) const {
    if (cfg_.log.dir.empty()) return "";
    const std::string path = cfg_.log.dir + "/config.yaml";
    if (path_kind(path) != PathKind::kFile) return "";
    try {
      const TrainConfig before =
          config_parse(file_read_bounded(path, "run folder config", 1 << 20), path, {});
      if (path_resolve(config_metrics_path(before)) == path_resolve(config_metrics_path(cfg_)) &&
          path_resolve(before.checkpoint.dir) != path_resolve(ours))
        return before.checkpoint.dir;
    } catch (const std::exception&) {
      // (a config.yaml of an earlier version: treated as this run's, as before)
    }
    return "";
  }
  // This rank's --trace file ("" when not tracing).
  std::string trace_path() const {
    return run_.trace_path.empty() || grid_->world_size == 1
               ? run_.trace_path
               : run_.trace_path + ".rank" + std::to_string(grid_->world_rank);
  }
  // The loss of a batch (its mean, or with sum its sum), under autocast when bf16: through the
  // whole logits, or the chunked output layer (train.loss).
  at::Tensor loss(const at::Tensor& inputs, const at::Tensor& targets, bool sum);
  // rank 0 builds data.path from data.source when it is missing (or an interrupted build).
  void data_build_if_missing();
  // Under mpirun: every rank opened the same data (sizes and sampled CRC-32s against rank 0's).
  void data_agree_across_ranks();
  // This run's progress for a checkpoint, with the data's fingerprint.
  TrainProgress progress_now(bool eval_pending) const {
    TrainProgress p;
    p.step = step_;
    p.bad_steps = bad_steps_;
    p.samples = sampler_->position();
    p.eval_pending = eval_pending;
    if (eval_pending) p.pending_row = pending_row_;
    p.data_fingerprint = data_fingerprint_;
    p.runs = continued_runs_;
    p.run = own_run_;
    return p;
  }
  // The --debug-truncate-data-at hook: every training shard cut to 64 bytes, on every rank's view.
  void data_truncate_for_test();

  TrainConfig cfg_;
  TrainRunOptions run_;
  std::shared_ptr<ProcessGrid> grid_;
  std::unique_ptr<TokenDataset> data_;
  std::unique_ptr<TokenSampler> sampler_;
  LongNetLM model_{nullptr};
  std::unique_ptr<AdamW> optim_;
  std::unique_ptr<SequenceParallelAttention> attention_;
  std::unique_ptr<MetricsWriter> metrics_;
  std::string run_config_yaml_;  // the run folder's config.yaml as written (rank 0)
  // At each save (rank 0): the run folder's files (config.yaml, train.log, the metrics file)
  // removed while the job runs are written again, whole; a warning says which.
  void run_folder_renew();
  std::string metrics_error_;       // rank 0: why a metrics row could not be written
  int64_t metrics_error_step_ = 0;  // ... and the step whose row it was
  bool metrics_failed_ = false;     // every rank, once stop_agreed has seen metrics_error_
  NamedTensors named_params_;
  std::vector<at::Tensor> params_;
  int64_t step_ = 0, bad_steps_ = 0, matmul_params_ = 0;
  bool bf16_ = false, chunked_loss_ = false;
  int64_t loss_chunk_rows_ = 0;
  std::string bits_per_ = "byte";  // the evaluation's unit: "byte" for byte tokens, else "token"
  // The metrics key of the evaluation's loss in bits: per byte only where a token is a byte.
  std::string val_bits_key() const {
    return bits_per_ == "byte" ? "val_bpb" : "val_bits_per_token";
  }
  // Per run: the step numbers and the steps' statistics not yet read (on CUDA a step's numbers
  // are read after the next step is queued), and the one finished before it, if the device went
  // straight on from it to the next step (not after an evaluation or a checkpoint).
  int64_t first_step_ = 0, tokens_per_step_ = 0;
  bool eval_interrupted_ = false;            // a stop signal ended an evaluation
  std::vector<std::string> continued_runs_;  // the resumed checkpoint's runs (TrainProgress)
  std::string own_run_;  // this run's name, fixed at its start (a later rename changes nothing)
  RecordedTokenizer tokenizer_;  // the training data's (recorded in every checkpoint)
  bool eval_pending_ = false;    // the resumed checkpoint's step's evaluation was cut short
  // That step's metrics row, written once its evaluation is done (TrainProgress::pending_row):
  // set where a stop signal cuts an evaluation short, and from the resumed checkpoint.
  std::string pending_row_;
  std::string resumed_from_;  // the checkpoint this run resumed from ("" when it started afresh)
  double flops_ = 0, peak_flops_ = 0;
  std::chrono::steady_clock::time_point t_start_;
  std::optional<StepStats> pending_, last_;
  // The steps since the last progress line: their count, time, and loss over the finite ones.
  struct {
    int64_t steps = 0, finite = 0;
    double seconds = 0, loss_sum = 0;
  } interval_;
  // rank 0, the whole job (run_lock_ first: destroyed after the checkpoint.dir inside it)
  std::unique_ptr<CheckpointDirLock> run_lock_, checkpoint_lock_;
  std::string data_fingerprint_;  // data_agree_across_ranks
};

// Whether two existing directories are the same one.
static bool same_dir(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

void Trainer::grid_setup() {
  const int world = mpi_world_size();
  // Every rank must train the same resolved config (another config file or override on one host
  // would make the ranks' models diverge silently, or their collectives mismatch): compared
  // before anything else runs over the world, the first differing line told by the rank that has
  // it.
  if (world > 1) {
    auto host = communicator_mpi_world();
    const std::string mine = config_to_yaml(cfg_), root = world_broadcast(*host, mine, 0);
    std::string diff;
    if (mine != root) {
      std::istringstream a(mine), b(root);
      std::string la, lb;
      while (std::getline(a, la) && std::getline(b, lb) && la == lb) {
      }
      diff = " (there '" + la + "', on rank 0 '" + lb + "')";
    }
    const int bad = static_cast<int>(world_max(*host, mine == root ? -1.0 : double(host->rank())));
    if (bad >= 0) diff = world_broadcast(*host, diff, bad);
    TORCH_CHECK(bad < 0, "rank ", bad, " resolved another config than rank 0", diff,
                ": every rank must run the same config file and overrides (mpirun -np P longnet "
                "train CONFIG [key=value ...], with the same CONFIG on every host)");
  }
  config_check(cfg_, world);
  const auto device = cfg_.device == "cuda" ? c10::kCUDA : c10::kCPU;
  collective_timeout_set(cfg_.train.collective_timeout_s);
  grid_ = process_grid_create(static_cast<int>(config_data_parallel(cfg_, world)),
                              static_cast<int>(cfg_.grid.sequence_parallel), device);
  bf16_ = cfg_.train.precision == "bf16";
  // Every path the job will write, checked now rather than at the first write an interval of
  // training later; the checkpoint directory locked against a second job.
  // Nothing is written over the config or over or into the dataset, nor into the text it is
  // built from (a later build would read the logs and checkpoints as text).
  const std::vector<std::string> inputs = {run_.config_path, cfg_.data.path, cfg_.data.source};
  // (a directory path that names a file is refused as such by output_dir_prepare)
  auto dir_prepare = [&](const std::string& dir, const std::string& what) {
    if (path_kind(dir) == PathKind::kMissing || path_kind(dir) == PathKind::kDirectory)
      output_not_input(dir, inputs, what);
    output_dir_prepare(dir, what);
  };
  // The trace (PATH on one rank, PATH.rankR on each of several) is none of the files this job
  // writes otherwise, existing or not yet: it would replace them. (Every rank decides alike.)
  if (!run_.trace_path.empty()) {
    const std::string metrics = path_resolve(config_metrics_path(cfg_));
    std::string clash;
    if (grid_->world_size == 1) {
      clash = run_folder_own_file(run_.trace_path, true);
      if (!clash.empty())
        clash = "the run folder's own " + clash + " (log.dir '" + cfg_.log.dir + "')";
      else if (path_resolve(run_.trace_path) == metrics)
        clash = "this job's metrics file (log.metrics)";
    } else {  // (no run folder file is named NAME.rankR)
      const std::string base = path_resolve(run_.trace_path) + ".rank";
      const std::string rest = metrics.rfind(base, 0) == 0 ? metrics.substr(base.size()) : "";
      if (!rest.empty() && rest.size() < 10 &&
          rest.find_first_not_of("0123456789") == std::string::npos &&
          std::stoll(rest) < grid_->world_size && (rest == "0" || rest[0] != '0'))
        clash = "with '.rank" + rest + "' (rank " + rest +
                "'s trace) this job's metrics file (log.metrics)";
    }
    if (!clash.empty())
      throw std::invalid_argument("--trace '" + run_.trace_path + "' is " + clash +
                                  ", which the trace would replace; give the trace a path of its "
                                  "own. Nothing was changed");
  }
  if (grid_->world_rank == 0) {
    dir_prepare(cfg_.checkpoint.dir, "checkpoint dir (checkpoint.dir)");
    checkpoint_lock_ = std::make_unique<CheckpointDirLock>(cfg_.checkpoint.dir);
    // (named by the key the user set: log.metrics, or log.dir for the run folder's file)
    const std::string metrics_what = cfg_.log.metrics.empty()
                                         ? "metrics file (metrics.jsonl in log.dir)"
                                         : "metrics file (log.metrics)";
    // log.metrics is none of the run folder's own files (its config.yaml, an earlier start's
    // config.N.yaml, train.log): they are rewritten, renamed or appended to otherwise.
    if (!cfg_.log.metrics.empty()) {
      const std::string rel = run_folder_own_file(cfg_.log.metrics, false);
      if (!rel.empty())
        throw std::invalid_argument(
            "log.metrics '" + cfg_.log.metrics + "' is the run folder's own " + rel +
            " (log.dir '" + cfg_.log.dir +
            "'); give the metrics another file (or leave log.metrics empty: " + cfg_.log.dir +
            "/metrics.jsonl). Nothing was changed");
    }
    // Nor a file in another job's folder (a run folder or checkpoint dir holds its lock file):
    // that run's own metrics would be set aside and continued with this run's rows.
    if (!cfg_.log.metrics.empty()) {
      const std::string resolved = path_resolve(cfg_.log.metrics);
      const std::string folder = resolved.substr(0, resolved.find_last_of('/') + 1);
      if (!folder.empty() && path_kind(folder + ".longnet.lock") == PathKind::kFile &&
          !same_dir(folder, cfg_.checkpoint.dir) &&
          (cfg_.log.dir.empty() || !same_dir(folder, cfg_.log.dir)))
        throw std::invalid_argument(
            "log.metrics '" + cfg_.log.metrics + "' lies in another job's folder ('" + folder +
            "' holds a .longnet.lock: a run folder or checkpoint.dir), whose files that job "
            "writes; give this run's metrics a file of its own (or leave log.metrics empty" +
            (cfg_.log.dir.empty() ? std::string() : ": " + cfg_.log.dir + "/metrics.jsonl") +
            "). Nothing was changed");
    }
    output_not_input(config_metrics_path(cfg_), inputs, metrics_what);
    output_file_prepare(config_metrics_path(cfg_), metrics_what, OutputContent::kMetrics);
    // The run folder: the resolved config, and from here on a copy of this output.
    if (!cfg_.log.dir.empty()) {
      dir_prepare(cfg_.log.dir, "run folder (log.dir)");
      // Locked too: a second job would rewrite its config.yaml and interleave its metrics.
      if (!same_dir(cfg_.log.dir, cfg_.checkpoint.dir))
        run_lock_ = std::make_unique<CheckpointDirLock>(cfg_.log.dir, "log.dir");
      // The run folder's files that are appended to (train.log; metrics.jsonl when it is the
      // folder's): never through a link to a file elsewhere.
      const std::string log_path = cfg_.log.dir + "/train.log";
      for (const std::string& name : {std::string("train.log"), std::string("metrics.jsonl")}) {
        if (name == "metrics.jsonl" && !cfg_.log.metrics.empty()) continue;
        const std::string path = cfg_.log.dir + "/" + name;
        struct stat ls;
        if (::lstat(path.c_str(), &ls) == 0 && (!S_ISREG(ls.st_mode) || ls.st_nlink > 1))
          throw std::runtime_error(
              "run folder (log.dir) '" + cfg_.log.dir + "': its " + name + " is " +
              (S_ISLNK(ls.st_mode)   ? std::string("a symbolic link")
               : S_ISREG(ls.st_mode) ? std::string("a hard link (another name of the same file)")
                                     : path_kind_text(path)) +
              "; longnet appends only to a " + name +
              " of its own. Remove it, or give another log.dir. Nothing was changed");
      }
      // config.yaml is replaced by a rename: a directory, FIFO or device there is refused now,
      // not after the data and model were set up.
      const std::string config_yaml = cfg_.log.dir + "/config.yaml";
      struct stat cs;
      if (::lstat(config_yaml.c_str(), &cs) == 0 && !S_ISREG(cs.st_mode) && !S_ISLNK(cs.st_mode))
        throw std::runtime_error("run folder (log.dir) '" + cfg_.log.dir +
                                 "': its config.yaml is " + path_kind_text(config_yaml) +
                                 "; longnet writes the resolved config there. Remove it, or give "
                                 "another log.dir. Nothing was changed");
      if (file_immutable(config_yaml))
        throw std::runtime_error("run folder (log.dir) '" + cfg_.log.dir +
                                 "': its config.yaml is marked immutable or append-only (chattr "
                                 "+i / +a), and longnet replaces it with the resolved config. "
                                 "Clear the mark (chattr -i -a), or give another log.dir. "
                                 "Nothing was changed");
      // (config.yaml is written once the resume's checks passed: a refused start changes none)
      log_file_open(log_path);
    }
  }
  if (!trace_path().empty()) {
    // Several ranks write PATH.rankR; PATH itself must be a place a trace may go, too (not a
    // device, a directory, a checkpoint or an input), as for one rank.
    if (trace_path() != run_.trace_path) {
      output_not_input(run_.trace_path, inputs, "trace file (--trace)");
      output_file_prepare(run_.trace_path, "trace file (--trace)", OutputContent::kTrace);
    }
    output_not_input(trace_path(), inputs, "trace file (--trace)");
    output_file_prepare(trace_path(), "trace file (--trace)", OutputContent::kTrace);
  }
  grid_->world->barrier();
  // A fresh run (checkpoint.resume: none) over another run's checkpoints: refused now, not after
  // the data is built.
  train_state_start_guard(*grid_, cfg_);
  log_info("longnet train: " + utc_time("%Y-%m-%d %H:%M:%S UTC") + ", " + std::to_string(world) +
           " rank(s), grid " + std::to_string(grid_->data_parallel) + " data x " +
           std::to_string(grid_->sequence_parallel) + " sequence parallel, device " +
           grid_->device.str() + (run_.config_path.empty() ? "" : ", config " + run_.config_path));
  log_info("resolved config:\n" + config_to_yaml(cfg_));
  const std::string engine_note =
      grid_->device.is_cuda()
          ? ""
          : engine_options_cpu_note(cfg_.engine(),
                                    [](const std::string& field) { return "engine." + field; });
  if (!engine_note.empty()) log_info("note: " + engine_note);
  if (!cfg_.log.dir.empty())
    log_info("run folder: " + cfg_.log.dir + " (config.yaml, train.log" +
             (cfg_.log.metrics.empty() ? ", metrics.jsonl)" : "); metrics: " + cfg_.log.metrics));
}

void Trainer::data_build_if_missing() {
  const DataConfig& d = cfg_.data;
  struct stat st;
  bool missing = ::stat(d.path.c_str(), &st) != 0, interrupted = false;
  const int stat_errno = missing ? errno : 0;
  if (!missing && S_ISDIR(st.st_mode) && !d.source.empty() && !d.tokenizer.empty()) {
    try {
      interrupted = !manifest_read(d.path).complete;
    } catch (const std::exception&) {
      // Not a dataset of ours (or damaged): opening it says what is wrong.
    }
  }
  if (!missing && !interrupted) {
    // data.source only builds a missing data.path: one that names other text than the dataset
    // was built from is said (the dataset is trained on as it is).
    if (!d.source.empty() && S_ISDIR(st.st_mode)) try {
        const auto built_from = manifest_read(d.path).sources;
        const std::string wanted = path_resolve(d.source);
        bool listed = false;
        for (const auto& s : built_from) listed |= path_resolve(s) == wanted;
        if (!built_from.empty() && !listed)
          log_warning("data.source '" + d.source + "' is not what data.path '" + d.path +
                      "' was built from ('" + built_from.front() + "'" +
                      (built_from.size() > 1
                           ? " and " + std::to_string(built_from.size() - 1) + " more"
                           : std::string()) +
                      "); the dataset is trained on as it is: data.source builds data.path "
                      "only when it is missing (remove it, or give another data.path, to build "
                      "from data.source)");
      } catch (const std::exception&) {
        // Not a dataset of ours (or damaged): opening it says what is wrong.
      }
    return;
  }
  // A symbolic link whose target is missing (an unmounted volume) or a loop is not built over.
  struct stat lst;
  TORCH_CHECK(!(missing && ::lstat(d.path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)),
              "data.path '", d.path, "' is a symbolic link to ",
              stat_errno == ELOOP ? "itself (a loop)" : "nothing (its target is missing)",
              "; longnet does not build data in its place: mount or fix its target, or give "
              "another data.path");
  TORCH_CHECK(!d.source.empty(), "data.path '", d.path,
              "' does not exist and no data.source is set to build it from; build it first: "
              "longnet data build "
              "--tokenizer KIND:PATH --source SRC --out ",
              d.path, " (or the byte-token file: longnet data build SRC_DIR ", d.path, ")");
  // llm.c shards are read, never built: building a longnet dataset there would only be refused
  // once built.
  TORCH_CHECK(d.format != "nanogpt", "data.path '", d.path,
              "' does not exist, and data.format is nanogpt (llm.c shards, which longnet reads but "
              "does not build): point data.path at the folder of the .bin shards, or set "
              "data.format: auto to build a longnet dataset there from data.source");
  // The model must hold the ids the build would write: said now, not after a build of hours.
  if (d.tokenizer.empty() || d.format == "legacy")
    config_check_vocab(cfg_, 256, "the 256 byte values of the byte-token file it would build");
  else if (tokenizer_kind_available(d.tokenizer.substr(0, d.tokenizer.find(':'))))
    config_check_vocab(cfg_, tokenizer_open(d.tokenizer)->vocab_size(),
                       "the vocabulary of data.tokenizer '" + d.tokenizer +
                           "' (checked before building data.path from data.source)");
  if (d.tokenizer.empty() || d.format == "legacy") {
    log_info("data: " + d.path + " missing; building it from " + d.source);
    // 2% for validation: long contexts need validation sequences of data.seq_len tokens.
    data_build(d.source, d.path, 0.02);
    return;
  }
  log_info("data: " + d.path +
           (interrupted ? " incomplete; finishing it" : " missing; building it") + " from " +
           d.source + " with " + d.tokenizer);
  DatasetBuildOptions o;
  o.sources = {d.source};
  o.tokenizer = d.tokenizer;
  o.out_dir = d.path;
  o.val_fraction = 0.02;
  if (interrupted) {  // finished as it was started (by `longnet data build` with its options)
    const DatasetManifest m = manifest_read(d.path);
    o.val_fraction = m.val_fraction;
    o.jsonl_field = m.jsonl_field;
    if (m.shard_tokens > 0) o.shard_bytes = uint64_t(m.shard_tokens) * uint64_t(m.token_bytes);
  }
  try {
    dataset_build(o);
  } catch (const std::exception& e) {
    // The build's hints name `data build` flags (--jsonl-field, --skip-bad-lines, --out) that
    // train has no keys for.
    throw std::runtime_error(std::string(e.what()) +
                             "\n(train builds data.source with the default options; for others, "
                             "build the dataset first: longnet data build --tokenizer " +
                             d.tokenizer + " --source " + d.source + " --out " + d.path +
                             " [--jsonl-field F] [--skip-bad-lines] ..., then train with it)");
  }
}

void Trainer::data_setup() {
  const DataConfig& d = cfg_.data;
  if (grid_->world_rank == 0) data_build_if_missing();
  {
    // Building data.path takes as long as the corpus needs: the other ranks wait for it past
    // train.collective_timeout_s (rank 0 reports its progress; should it fail, the job ends).
    CollectiveAllowance building(std::numeric_limits<double>::infinity(),
                                 "waiting for rank 0 to build data.path " + d.path);
    grid_->world->barrier();
  }
  const bool evaluates = cfg_.eval.interval > 0;
  data_ = TokenDataset::open(d.path, d.format, evaluates);
  log_info(dataset_config_check(cfg_, *data_));
  data_agree_across_ranks();
  // What the checkpoints record of the tokenizer (its hash from the file when the dataset records
  // none, e.g. llm.c shards with data.tokenizer set; unknown when that file is not here).
  tokenizer_ = config_data_tokenizer(cfg_);
  tokenizer_.hash = recorded_hash(tokenizer_);
  if (tokenizer_.hash.empty()) tokenizer_ = {};
  const DatasetManifest* m = data_->manifest();
  if (data_->format() == "nanogpt" || (m && m->tokenizer_kind != "bytes")) bits_per_ = "token";
  if (d.verify == "checksums" && (data_->manifest() || data_->format() == "nanogpt")) {
    // Each host's copy is read whole once: each of its ranks checks every local_ranks-th shard
    // (its CRC-32; an llm.c shard's ids), so a copy damaged on one host is found there; all end
    // on the first bad one. Shards are whole: one rank may read far more than the others
    // (nanoGPT's train.bin), so the wait for it is allowed a minute and 50 MB/s of all the data.
    const double bytes =
        4.0 * double(data_->tokens(DataSplit::kTrain) + data_->tokens(DataSplit::kVal));
    CollectiveAllowance slow_read(60 + bytes / 50e6,
                                  "verifying the shards of " + data_->path() + " (data.verify)");
    const auto [bad, why] = data_->verify_checksums(grid_->local_rank, grid_->local_ranks);
    const double n = double(data_->shard_count());
    const double first = n - world_max(*grid_, bad < 0 ? 0.0 : n - double(bad));
    if (first < n) {
      const int64_t finder =  // (every rank takes part, the finder too)
          int64_t(world_max(*grid_, bad == int64_t(first) ? double(grid_->world_rank) : -1.0));
      TORCH_CHECK(bad != int64_t(first), why);
      TORCH_CHECK(data_->manifest(), "shard '", data_->shard_path(int64_t(first)),
                  "' holds a token id not below the vocabulary ", data_->vocab_bound(), " (",
                  data_->vocab_bound_source(), "; rank ", finder,
                  " read it on its host): the file is corrupt or was made with another tokenizer");
      TORCH_CHECK(false, "shard '", data_->shard_path(int64_t(first)),
                  "' is corrupt: its CRC-32 does not match the manifest (rank ", finder,
                  " checked its host's copy); rerun the same `longnet data build` command "
                  "there: it verifies every shard and rebuilds from the first damaged one");
    }
  }
  SamplerOptions so;
  so.seq_len = d.seq_len;
  so.batch_size = d.batch_size;
  so.dp_size = grid_->data_parallel;
  so.dp_index = grid_->dp_index;
  so.sp_size = grid_->sequence_parallel;
  so.sp_index = grid_->sp_index;
  so.seed = static_cast<uint64_t>(cfg_.train.seed);
  so.val_batches = evaluates ? cfg_.eval.batches : 0;
  sampler_ = std::make_unique<TokenSampler>(*data_, so);
  if (!evaluates)
    log_info("eval.interval is 0: no evaluation (validation loss is not measured)");
  else if (sampler_->val_batches() < cfg_.eval.batches)
    log_info("warning: eval.batches = " + std::to_string(cfg_.eval.batches) + " asks for " +
             std::to_string(cfg_.eval.batches * so.dp_size * so.batch_size) +
             " validation windows of " + std::to_string(so.seq_len) +
             " tokens, but the validation split (" +
             std::to_string(data_->tokens(DataSplit::kVal)) + " tokens) holds fewer apart: " +
             "each evaluation reads " + std::to_string(sampler_->val_batches()) +
             " batch(es) instead (more would score the same tokens again)");
  log_info("data: " + data_->summary() +
           (d.verify == "checksums" && data_->manifest()              ? "; checksums verified"
            : d.verify == "checksums" && data_->format() == "nanogpt" ? "; ids verified"
                                                                      : ""));
}

void Trainer::data_agree_across_ranks() {
  // Every rank must read the same data (a file at one path may differ between hosts, or be a
  // stale copy): the ranks of a sequence would otherwise hold pieces of different texts, and
  // nothing else would tell. The same fingerprint goes into checkpoints (a resume on other data
  // at the same path is said).
  std::string mine = data_->format() + ", vocabulary bound " + std::to_string(data_->vocab_bound());
  for (DataSplit split : {DataSplit::kTrain, DataSplit::kVal}) {
    const int64_t n = data_->tokens(split);
    const uint32_t crc = tokens_sampled_crc(n, [&](int64_t start, int64_t count) {
      auto t = at::empty({count}, at::kLong);
      data_->read(split, start, count, t.data_ptr<int64_t>());
      return t;
    });
    mine += std::string(", ") + split_name(split) + " " + std::to_string(n) +
            " tokens, sampled CRC-32 " + crc32_hex(crc);
  }
  data_fingerprint_ = mine;
  if (grid_->world_size == 1) return;
  const WorldDifference d = world_first_difference(*grid_->host, mine);
  if (d.rank < 0) return;
  const std::string other = std::to_string(d.rank);
  throw std::runtime_error("rank " + other + " opened other data than rank 0 at data.path '" +
                           cfg_.data.path + "' (rank " + other + ": " + d.theirs +
                           "; rank 0: " + d.root +
                           "): under mpirun every rank must read the same data; copy the same "
                           "dataset to every host (or put it on a shared file system)");
}

void Trainer::data_truncate_for_test() {
  if (grid_->world_rank == 0)
    for (const auto& f : data_->files(DataSplit::kTrain))
      TORCH_CHECK(::truncate(f.c_str(), 64) == 0, "--debug-truncate-data-at: cannot truncate ", f);
  grid_->world->barrier();
}

void Trainer::resources_check() {
  {
    // An estimate of what training holds per rank: each parameter with its gradient and Adam's
    // two moments in float32, and each layer's input kept for the backward (on GPUs a lower
    // bound; on the CPU, below, measured). A run that cannot
    // fit is refused here, not ended by the allocator (or on the CPU by the kernel's OOM killer)
    // while the model is built or at the first step.
    const auto& m = cfg_.model;
    const double d = double(m.layer.d_model), ff = double(m.layer.dim_feedforward);
    const double layers = double(m.num_layers) + double(m.num_encoder_layers);
    const double params = lm_parameter_estimate(m);
    const double tokens =
        double(cfg_.data.batch_size) * double(cfg_.data.seq_len) / double(grid_->sequence_parallel);
    char what[200];
    std::snprintf(what, sizeof(what),
                  "train: a model of %.3g parameters with data.batch_size %lld x data.seq_len %lld",
                  params, static_cast<long long>(cfg_.data.batch_size),
                  static_cast<long long>(cfg_.data.seq_len));
    // The plain loss holds the logits of every token at once, with their softmax and gradient
    // (8 bytes each at least; the chunked loss a few rows at a time): for a narrow model with a
    // large batch, the most of all. (paper_lm's plain loss peaked at 55 GiB with 32,768 x
    // 100,277 logits per micro-step, about 15 bytes each after the model's share.)
    const double logits = config_chunked_loss(cfg_) ? 0.0 : 8 * tokens * double(m.vocab_size);
    // Activations: every layer's input, and its feed-forward hidden before and after the
    // activation function (one layer's at a time with activation checkpointing), in the
    // training dtype.
    const double act = cfg_.train.precision == "bf16" ? 2 : 4;
    const double ffn = 2 * act * tokens * ff * (m.activation_checkpointing ? 1.0 : layers);
    // On the CPU the plain engine keeps more per layer for the backward: every branch's output
    // and lse, q, k, v and their xPos forms, the norms' inputs and outputs, the feed-forward's
    // four ff-wide tensors. Measured (session 15, tiny.yaml): 67 KB per token per rank, about
    // 0.8 of this count; and the ranks of one host share its memory.
    const auto branches = double(m.layer.attention.segment_lengths.size());
    const double cpu_layers = grid_->device.is_cuda()
                                  ? 0.0
                                  : act * tokens * ((10 + 2 * branches) * d + 4 * ff) *
                                        (m.activation_checkpointing ? 1.0 : layers);
    // The CPU's plain attention maths holds one branch's scores.
    const auto& a = m.layer.attention;
    const double scores = dilated_plain_score_bytes(
        int64_t(tokens), cfg_.data.seq_len, m.layer.num_heads, a.segment_lengths, a.dilation_rates,
        cfg_.train.precision == "bf16" ? at::kBFloat16 : at::kFloat, grid_->device);
    // (and on the CPU each process's own half GiB: LibTorch, MPI, the data's pages)
    const double per_rank = 16 * params + 4 * tokens * d * layers +
                            (grid_->device.is_cuda() ? ffn : cpu_layers + double(1 << 29)) +
                            scores + logits;
    // (On the CPU the ranks of one host share its memory: more of them there add to it.)
    host_memory_check(per_rank, grid_->local_ranks, grid_->device, what,
                      std::string("use fewer or narrower layers (model.num_layers, model.d_model, "
                                  "model.dim_feedforward, model.vocab_size), shorter segments "
                                  "(model.segment_lengths) on the CPU, a smaller "
                                  "data.batch_size or data.seq_len") +
                          (grid_->device.is_cuda() ? ", or more sequence-parallel ranks"
                                                   : ", or ranks on more hosts"));
  }
  checkpoint_room_check();
}

void Trainer::checkpoint_room_check() {
  if (grid_->world_rank != 0) return;
  // Room for one more checkpoint: float32 parameters and AdamW's two moments (the estimate
  // leaves out biases and norms, well inside the margin), plus headroom.
  const int64_t one = int64_t(std::min(12 * lm_parameter_estimate(cfg_.model), 0x1p62)),
                margin = int64_t(64) << 20;
  const int64_t free = free_bytes(cfg_.checkpoint.dir);
  TORCH_CHECK(free < 0 || free >= one + margin, "checkpoint dir (checkpoint.dir) '",
              cfg_.checkpoint.dir, "' has ", free >> 20,
              " MiB free; one checkpoint of this model takes about ", (one + (1 << 20) - 1) >> 20,
              " MiB, and 64 MiB more are kept free. Free some space or use another "
              "checkpoint.dir");
}

void Trainer::model_setup() {
  at::manual_seed(cfg_.train.seed);  // the same initial parameters on every rank
  model_ = LongNetLM(cfg_.model);
  model_->to(grid_->device);
  for (const auto& p : model_->named_parameters()) named_params_.push_back({p.key(), p.value()});
  // Every rank starts from rank 0's parameters, whatever its generator did.
  for (auto& [name, p] : named_params_) {
    torch::NoGradGuard no_grad;
    grid_->world->broadcast(p.data(), 0);
    params_.push_back(p);
  }
  // Dropout masks differ per rank from here on.
  at::manual_seed(cfg_.train.seed + 1 + grid_->world_rank);

  // Weight decay on matrices only (not on biases, norms).
  std::vector<at::Tensor> decay, no_decay;
  int64_t total = 0;
  for (auto& [name, p] : named_params_) {
    total += p.numel();
    if (p.dim() >= 2) {
      decay.push_back(p);
      if (name.find("embedding") == std::string::npos) matmul_params_ += p.numel();
    } else {
      no_decay.push_back(p);
    }
  }
  chunked_loss_ = config_chunked_loss(cfg_);
  loss_chunk_rows_ = cross_entropy_chunk_rows(cfg_.model.vocab_size);
  optim_ = std::make_unique<AdamW>(
      std::vector<AdamW::Group>{{decay, cfg_.optim.weight_decay}, {no_decay, 0.0}},
      cfg_.optim.betas[0], cfg_.optim.betas[1], cfg_.optim.eps);
  attention_ = std::make_unique<SequenceParallelAttention>(grid_);
  const auto& m = cfg_.model;
  std::ostringstream s;
  s << "model: " << m.variant << ", " << total << " parameters (" << matmul_params_
    << " in matmuls), d_model " << m.layer.d_model << ", " << m.num_layers << " layers, "
    << m.layer.num_heads << " heads, precision " << cfg_.train.precision
    << (!m.activation_checkpointing ? ""
        : m.checkpoint_layers == 0 || m.checkpoint_layers == m.num_layers
            ? ", activation checkpointing"
            : ", activation checkpointing in " + std::to_string(m.checkpoint_layers) + " of " +
                  std::to_string(m.num_layers) + " layers")
    << ", loss "
    << (chunked_loss_
            ? "chunked (" + std::to_string(loss_chunk_rows_) + " rows of logits at a time)"
            : std::string("plain"));
  log_info(s.str());
}

at::Tensor Trainer::loss(const at::Tensor& inputs, const at::Tensor& targets, bool sum) {
  at::Tensor out;  // logits (B, N_local, V), or the hidden states (B, N_local, d_model)
  {
    CudaAutocastScope autocast(bf16_);
    out = chunked_loss_ ? model_->forward_hidden(inputs, *attention_)
                        : model_->forward(inputs, *attention_);
  }
  if (!chunked_loss_) return lm_loss(out, targets, sum);
  auto& hidden = out;
  ChunkedCrossEntropyOptions o;
  o.chunk_rows = loss_chunk_rows_;
  o.sum = sum;
  if (bf16_) o.compute_dtype = at::kBFloat16;  // as autocast runs the plain path's `out`
  return linear_cross_entropy_chunked(hidden, model_->out->weight, model_->out->bias, targets, o);
}

double Trainer::evaluate() {
  model_->eval();
  torch::NoGradGuard no_grad;
  auto sums = at::zeros({2}, at::TensorOptions().dtype(at::kDouble).device(grid_->device));
  for (int64_t i = 0; i < sampler_->val_batches(); ++i) {
    if (i == 0 && step_ == fault_injection().stop_in_eval_at_step && grid_->world_rank == 0)
      std::raise(SIGUSR1);
    // A stop signal ends the evaluation at the next batch (on every rank alike); the step loop
    // then checkpoints and stops as at a step boundary.
    if (world_max(*grid_, stop_signal_caught()) > 0) {
      model_->train();
      eval_interrupted_ = true;
      return std::nan("");
    }
    auto batch = sampler_->val_batch(i);
    auto targets = batch_to(batch.targets, grid_->device);
    sums[0] += loss(batch_to(batch.inputs, grid_->device), targets, true).to(at::kDouble);
    sums[1] += double(targets.numel());
  }
  grid_->world->all_reduce(sums, ReduceOp::kSum)->wait();
  model_->train();
  auto s = sums.cpu();
  return s[0].item<double>() / s[1].item<double>();
}

std::optional<StepStats> Trainer::train_step() {
  const int64_t accum = cfg_.train.grad_accumulation;
  const auto start = sampler_->position();
  const RngStates rng = accum > 1 ? rng_states_get(*grid_) : RngStates{};
  const double lr = lr_at(cfg_.optim, step_, cfg_.train.steps);
  const auto& faults = fault_injection();
  StepStats current(step_ + 1, grid_->device);
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
  PhaseTimer prof(grid_->device,
                  run_.profile_steps > 0 && step_ - first_step_ < run_.profile_steps);
  auto loss_sum = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(grid_->device));
  for (int64_t micro = 0; micro < accum; ++micro) {
    // A stop signal ends a long step at the next micro-step (on every rank alike).
    if (micro == 1 && step_ == faults.stop_in_step_at_step && grid_->world_rank == 0)
      std::raise(SIGUSR1);
    if (micro > 0 && world_max(*grid_, stop_signal_caught()) > 0) {
      for (auto& p : params_) p.mutable_grad() = at::Tensor();
      sampler_->set_position(start);
      rng_states_set(*grid_, rng);
      return std::nullopt;
    }
    auto batch = sampler_->next_batch();
    auto loss = this->loss(batch_to(batch.inputs, grid_->device),
                           batch_to(batch.targets, grid_->device), false);
    const auto& nan_at = faults.nan_at_steps;
    if (std::find(nan_at.begin(), nan_at.end(), step_) != nan_at.end())
      loss = loss * std::nan("");  // a deliberately poisoned step
    prof.lap("forward");
    (loss / double(accum)).backward();
    prof.lap("backward");
    loss_sum += loss.detach() / double(accum);
    if (bf16_) at::autocast::clear_cache();
  }
  if (pending_) finish_step(false);  // the previous step, finished on the GPU by now or soon
  grads_all_reduce(params_, *grid_->world);
  grid_->world->all_reduce(loss_sum, ReduceOp::kSum)->wait();
  std::vector<at::Tensor> grads;
  for (const auto& p : params_)
    if (p.grad().defined()) grads.push_back(p.grad());
  // The norm, the clipping and the decision to skip a non-finite step all stay on the device.
  torch::NoGradGuard no_grad;
  auto loss_total = loss_sum.reshape({}).to(at::kDouble);
  auto norm = at::stack(at::_foreach_norm(grads)).to(at::kDouble).norm();  // one kernel
  auto skip =
      at::logical_not(at::isfinite(loss_total).logical_and(at::isfinite(norm))).to(at::kFloat);
  prof.lap("all-reduce + norm");
  const double clip = cfg_.optim.grad_clip;
  if (clip > 0)
    at::_foreach_mul_(grads, at::where(norm > clip, clip / (norm + 1e-6), 1.0).to(at::kFloat));
  optim_->step(lr, skip);
  prof.lap("optimizer");
  current.queued(lr, at::stack({loss_total, norm}));
  if (prof.enabled()) log_info("profile step " + std::to_string(step_ + 1) + ": " + prof.report());
  return current;
}

void Trainer::run_folder_renew() {
  std::vector<std::string> again;
  try {
    if (log_file_renew()) again.push_back("train.log");
    const std::string yaml = cfg_.log.dir + "/config.yaml";
    if (!run_config_yaml_.empty() && path_kind(yaml) == PathKind::kMissing) {
      if (!make_dirs(cfg_.log.dir))
        throw std::runtime_error("run folder '" + cfg_.log.dir +
                                 "' cannot be made again: " + std::strerror(errno));
      file_write_atomic(yaml, {{run_config_yaml_.data(), run_config_yaml_.size()}});
      again.push_back("config.yaml");
    }
    if (metrics_ && metrics_->renew()) again.push_back(metrics_->path());
  } catch (const std::exception& e) {
    log_warning(std::string(e.what()) + "; training goes on (its checkpoints are kept)");
    return;
  }
  if (again.empty()) return;
  std::string names;
  for (const auto& n : again) names += (names.empty() ? "" : ", ") + n;
  log_warning("run folder: " + names + " removed while this job ran; written again, with every " +
              "line so far");
}

void Trainer::save(bool eval_interrupted) {
  if (run_lock_) run_lock_->renew();
  if (checkpoint_lock_) checkpoint_lock_->renew();
  if (grid_->world_rank == 0) run_folder_renew();
  // (after the first save the temporary name is gone, renamed or removed: nothing to do)
  if (grid_->world_rank == 0 && !resumed_from_.empty())
    checkpoint_temporary_promote(cfg_.checkpoint.dir, resumed_from_);
  train_state_save(*grid_, cfg_, named_params_, *optim_, progress_now(eval_interrupted),
                   tokenizer_);
}

void Trainer::metrics_write(const JsonLine& line) {
  if (!metrics_ || !metrics_error_.empty()) return;
  try {
    if (step_ == fault_injection().metrics_fail_at_step)
      throw std::runtime_error("metrics file '" + metrics_->path() +
                               "': write failed (an injected failure: --debug-metrics-fail-at)");
    // (the run's name last: `JsonLine::continuing` rows held back in a checkpoint have none)
    metrics_->write(own_run_.empty() ? line : JsonLine(line).add("run", own_run_));
  } catch (const std::exception& e) {
    metrics_error_ = e.what();
    metrics_error_step_ = step_;
    log_info("error: " + metrics_error_ +
             "; no more metrics rows are written: training stops at this step or the next, "
             "with a checkpoint saved (where it fits)");
  }
}

bool Trainer::stop_agreed() {
  // A signal's number is below 1,000: one all-reduce tells both.
  constexpr double kMetricsFailed = 1000;
  const double v = world_max(
      *grid_, std::max(double(stop_signal_caught()), metrics_error_.empty() ? 0 : kMetricsFailed));
  metrics_failed_ = metrics_failed_ || v >= kMetricsFailed;
  return v > 0;
}

void Trainer::metrics_failure_throw() {
  if (!metrics_failed_) return;
  const std::string what =
      world_broadcast(*grid_,
                      metrics_error_ + "; the metrics rows from step " +
                          std::to_string(metrics_error_step_) + " on are missing",
                      0);
  // (step_ > 0: its checkpoint is this run's last save, or the one it resumed from)
  throw std::runtime_error(
      what + "; training stopped at step " + std::to_string(step_) +
      (step_ > 0 ? ", whose checkpoint is in " + cfg_.checkpoint.dir +
                       ": give the metrics file room (or another log.metrics) and resume with "
                       "checkpoint.resume: auto"
                 : ": give the metrics file room (or another log.metrics) and start again"));
}

bool Trainer::evaluate_now(const std::string& label, const std::string& stop_what) {
  const double v = evaluate();
  if (eval_interrupted_) {
    log_info("stopping on a signal during " + stop_what + "; nothing to save");
    return false;
  }
  log_info(label + ": loss " + std::to_string(v) + ", bits per " + bits_per_ + " " +
           std::to_string(v / std::log(2.0)));
  if (metrics_) {
    // The step's own row, held back when its evaluation was cut short, now with the evaluation.
    JsonLine line =
        pending_row_.empty() ? JsonLine().add("step", step_) : JsonLine::continuing(pending_row_);
    metrics_write(line.add("val_loss", v).add(val_bits_key(), v / std::log(2.0)));
  }
  pending_row_.clear();
  return true;
}

void Trainer::finish_step(bool eval_now) {
  StepStats s = std::move(*pending_);
  pending_.reset();
  const auto [loss_sum, grad_norm] = s.values();
  const double loss = loss_sum / grid_->world_size;
  const double step_s = s.seconds(last_ ? &*last_ : nullptr);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start_).count();
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
                "); lower optim.lr, check the data, or resume from the last checkpoint");
  }
  const double tok_s = tokens_per_step_ / step_s;
  const bool cuda = grid_->device.is_cuda();
  JsonLine line;
  line.add("step", s.step())
      .add("time", utc_time())
      .add("elapsed_s", elapsed)
      .add("loss", loss)
      .add("lr", s.lr())
      .add("grad_norm", grad_norm)
      .add("tokens_per_s", tok_s)
      .add("step_ms", step_s * 1e3)
      .add("skipped", !finite);
  if (cuda) line.add("mfu", flops_ / step_s / peak_flops_).add("peak_gib", peak_gib());
  if (eval_now) {
    const double v = evaluate();
    if (eval_interrupted_) {
      log_info("eval at step " + std::to_string(s.step()) + ": interrupted by a stop signal");
      // The row waits for the evaluation, which the resume does (kept in the checkpoint), so
      // the step has one row, as in an uninterrupted run.
      pending_row_ = line.str();
    } else {
      line.add("val_loss", v).add(val_bits_key(), v / std::log(2.0));
      log_info("eval at step " + std::to_string(s.step()) + ": loss " + std::to_string(v) +
               ", bits per " + bits_per_ + " " + std::to_string(v / std::log(2.0)));
    }
  }
  if (pending_row_.empty()) metrics_write(line);
  // The progress line: loss, speed and MFU averaged over the steps since the last line.
  interval_.steps += 1;
  interval_.seconds += step_s;
  if (finite) {
    interval_.loss_sum += loss;
    interval_.finite += 1;
  }
  const int64_t total = cfg_.train.steps;
  if (s.step() % cfg_.log.interval == 0 || s.step() == total || s.step() == first_step_ + 1) {
    const double eta = elapsed / double(s.step() - first_step_) * double(total - s.step());
    const double avg_s = interval_.seconds / double(interval_.steps);
    const std::string mfu =
        cuda ? " | MFU " + std::to_string(int(100 * flops_ / avg_s / peak_flops_)) + "%" : "";
    const std::string skipped =
        interval_.finite < interval_.steps
            ? " (" + std::to_string(interval_.steps - interval_.finite) + " skipped)"
            : "";
    char buf[320];
    std::snprintf(buf, sizeof(buf),
                  "step %lld/%lld | loss %.4f%s | lr %.2e | %.0f tok/s | %.0f ms/step%s | "
                  "elapsed %s | ETA %s | %s",
                  (long long)s.step(), (long long)total,
                  interval_.finite ? interval_.loss_sum / double(interval_.finite) : std::nan(""),
                  skipped.c_str(), s.lr(), tokens_per_step_ / avg_s, avg_s * 1e3, mfu.c_str(),
                  hms(elapsed).c_str(), hms(eta).c_str(), utc_time("%H:%M:%S UTC").c_str());
    log_info(buf);
    interval_ = {};
  }
  last_ = std::move(s);
}

void Trainer::loop() {
  const int64_t total = cfg_.train.steps;
  const int64_t global_batch =
      grid_->data_parallel * cfg_.data.batch_size * cfg_.train.grad_accumulation;
  tokens_per_step_ = global_batch * cfg_.data.seq_len;
  flops_ = step_flops(cfg_, tokens_per_step_, global_batch, matmul_params_);
  // H100/H200 dense bf16 peak of every GPU of the job (flops_ counts the whole job's step).
  peak_flops_ = grid_->device.is_cuda() ? 989e12 * grid_->world_size : std::nan("");
  // The evaluation a stop signal cut short at the resumed step, done now (a stop during it
  // leaves the checkpoint as it is). Once done, the checkpoint of that step is written again
  // without the mark, so that a rerun (of a finished run, say) does not evaluate it once more.
  // With evaluations now off, the step's held-back row is written without one.
  if (eval_pending_) {
    if (cfg_.eval.interval > 0) {
      if (!evaluate_now("eval at step " + std::to_string(step_) + " (cut short by the stop before)",
                        "the evaluation of step " + std::to_string(step_)))
        return;
    } else if (!pending_row_.empty()) {
      metrics_write(JsonLine::continuing(pending_row_));
    }
    pending_row_.clear();
    save(false);
  }
  eval_pending_ = false;
  if (step_ >= total) {
    log_info("this run is already finished: its checkpoint " + resumed_from_ + " is at step " +
             std::to_string(step_) + " and train.steps is " + std::to_string(total) +
             "; nothing to do. To train further, raise train.steps (e.g. "
             "train.steps=" +
             std::to_string(2 * std::max<int64_t>(step_, 1)) +
             "; the learning-rate schedule follows the new length); to start afresh, give a new "
             "log.dir and checkpoint.dir");
    return;
  }
  // --trace records a window of this run's steps: a run too short to reach it is refused now,
  // not found out at its end (every rank decides alike).
  if (!trace_path().empty() && total - step_ < StepTrace::kFirst + StepTrace::kSteps)
    throw std::invalid_argument("--trace records steps " + std::to_string(StepTrace::kFirst + 1) +
                                " to " + std::to_string(StepTrace::kFirst + StepTrace::kSteps) +
                                " of a run, but this one trains " + std::to_string(total - step_) +
                                " step(s) (" + std::to_string(step_) + " -> " +
                                std::to_string(total) + "); raise train.steps to at least " +
                                std::to_string(step_ + StepTrace::kFirst + StepTrace::kSteps) +
                                ", or leave --trace out. Nothing was trained");
  log_info("training: steps " + std::to_string(step_) + " -> " + std::to_string(total) + ", " +
           std::to_string(tokens_per_step_) + " tokens per step (" + std::to_string(global_batch) +
           " sequences of " + std::to_string(cfg_.data.seq_len) + ")");
  if (step_ == 0 && cfg_.eval.interval > 0 &&
      !evaluate_now("eval before training", "the evaluation before training"))
    return;
  t_start_ = std::chrono::steady_clock::now();
  first_step_ = step_;
  StepTrace trace(trace_path(), grid_->device);
  const auto& faults = fault_injection();
  // On CUDA a step's numbers are read after the next step's forward and backward are queued; at
  // evaluations, checkpoints, stops and on the CPU, at once.
  const bool defer = grid_->device.is_cuda();
  while (step_ < total) {
    const int64_t steps_this_run = step_ - first_step_;
    trace.at_step(steps_this_run);
    if (faults.sleep_after_step > 0 && step_ >= faults.sleep_after_step) ::usleep(500000);
    if (step_ == faults.truncate_data_at_step) data_truncate_for_test();
    if (step_ == faults.stall_at_step && grid_->world_rank == faults.stall_rank) {
      std::fprintf(stderr, "%sstalling on purpose at step %lld (--debug-stall)\n",
                   log_prefix().c_str(), static_cast<long long>(step_));
      std::fflush(stderr);
      for (;;) ::pause();
    }
    auto stats = train_step();
    if (!stats) {
      // A stop signal inside the step: its micro-steps are dropped, and the state after the step
      // before it is saved (unless this run has done no step, or that one was saved already).
      if (pending_) finish_step(false);
      if (step_ > first_step_ && step_ % cfg_.checkpoint.interval != 0) save(false);
      log_info(
          "stopping on a signal during step " + std::to_string(step_ + 1) +
          " (its micro-steps are dropped)" +
          (step_ > first_step_ ? "; resume with checkpoint.resume: auto" : "; nothing to save"));
      return;
    }
    pending_.emplace(std::move(*stats));
    ++step_;
    bool stop_signal = stop_agreed();
    const bool stop_here = run_.stop_after > 0 && step_ - first_step_ >= run_.stop_after;
    const bool eval_now =
        cfg_.eval.interval > 0 && (step_ % cfg_.eval.interval == 0 || step_ == total);
    bool save_now =
        step_ % cfg_.checkpoint.interval == 0 || step_ == total || stop_signal || stop_here;
    if (!defer || eval_now || save_now) finish_step(eval_now);
    if (eval_interrupted_) stop_signal = save_now = true;  // a signal came during the evaluation
    if (save_now) {
      if (step_ == fault_injection().stop_in_save_at_step && grid_->world_rank == 0)
        std::raise(SIGUSR1);  // (after the check above: as if it came during the write)
      save(eval_interrupted_);
      // A signal during the write (a scheduler's stop, as often as not, comes while a periodic
      // checkpoint is written): this step is saved, so stop here rather than run and save
      // another (every rank asks: all of them stop at this step or none does).
      if (!stop_signal && !stop_here) stop_signal = stop_agreed();
    }
    if (eval_now || save_now) last_.reset();
    if (metrics_failed_) return;  // (run() says why)
    if (stop_signal) {
      log_info("stopping on a signal after step " + std::to_string(step_) +
               "; resume with checkpoint.resume: auto");
      return;
    }
    if (stop_here) {
      log_info("stopping after " + std::to_string(step_ - first_step_) + " steps (--stop-after)");
      return;
    }
  }
  log_info("training done: " + std::to_string(step_) + " steps" +
           (grid_->device.is_cuda() ? ", peak memory " + std::to_string(peak_gib()) + " GiB" : ""));
}

int Trainer::run() {
  own_run_ = train_run_name(cfg_.log.dir);
  grid_setup();
  resources_check();
  data_setup();
  checkpoint_room_check();
  model_setup();
  std::string resumed_dir = cfg_.checkpoint.dir;  // where the resumed run kept its checkpoints
  if (auto progress = train_state_resume(*grid_, cfg_, named_params_, *optim_)) {
    if (!progress->checkpoint_dir.empty()) resumed_dir = progress->checkpoint_dir;
    continued_runs_ = progress->runs;
    step_ = progress->step;
    bad_steps_ = progress->bad_steps;
    eval_pending_ = progress->eval_pending;
    pending_row_ = progress->pending_row;
    resumed_from_ = progress->resumed_from;
    sampler_->set_position(progress->samples);
    // Token ids of another tokenizer mean other text: refused, not trained on (the checkpoint
    // would then record this tokenizer for a model that learnt the other's ids).
    if (!progress->tokenizer.empty() && !tokenizer_.spec.empty()) {
      const RecordedTokenizer theirs{progress->tokenizer, progress->tokenizer_hash};
      const auto same = tokenizers_same(theirs, tokenizer_);
      auto shown = [](const RecordedTokenizer& t) {  // (a hash is KIND:HEX, or the kind alone)
        return t.spec + (t.hash == t.spec ? "" : " (hash " + t.hash.substr(0, 30) + "...)");
      };
      if (same && !*same)
        throw std::invalid_argument(
            "resume: the checkpoint was trained on data tokenized by " + shown(theirs) +
            ", but data.path '" + cfg_.data.path + "' is tokenized by " + shown(tokenizer_) +
            ": its token ids mean other text. Resume on data of the checkpoint's tokenizer, or "
            "train on this data as a new run (its own log.dir). Nothing was changed");
    }
    if (!progress->data_fingerprint.empty() && progress->data_fingerprint != data_fingerprint_)
      log_info("resume: warning: the data at data.path '" + cfg_.data.path +
               "' is not the data the checkpoint was trained on (then: " +
               progress->data_fingerprint + "; now: " + data_fingerprint_ +
               "): the batches from here on are not those of an uninterrupted run");
  }
  if (grid_->world_rank == 0) {
    // A run from step 0 starts its own metrics file; one resumed continues the file, unless the
    // run folder was used by another run since (its config.yaml names another checkpoint.dir):
    // then that run's rows are kept aside, not cut at this step and continued.
    const std::string other = step_ > 0 ? run_folder_other_checkpoints(resumed_dir) : "";
    // A fresh start in a run folder whose last run kept its checkpoints elsewhere, which still
    // hold some: said (say a config from before checkpoint.dir defaulted to log.dir/checkpoints,
    // whose run would otherwise start over unnoticed).
    if (step_ == 0 && cfg_.checkpoint.resume == "auto") {
      const std::string before = run_folder_other_checkpoints(cfg_.checkpoint.dir);
      if (!before.empty() && path_kind(before) == PathKind::kDirectory &&
          !checkpoint_list(before).empty())
        log_info("warning: the run folder's config.yaml (" + cfg_.log.dir +
                 ") is of a run that kept its checkpoints in '" + before + "', which holds " +
                 std::to_string(checkpoint_list(before).size()) +
                 "; this run starts from step 0 in '" + cfg_.checkpoint.dir +
                 "'. To continue that run instead, stop now and give checkpoint.dir=" + before);
    }
    metrics_ =
        std::make_unique<MetricsWriter>(config_metrics_path(cfg_), step_ == 0 || !other.empty());
    // A resumed run whose metrics file (one outside the run folder, say) ends with another run's
    // rows, written since: those are kept aside too, not cut at this step and continued. Rows
    // name their run; this run's are its own and those of the runs it continues.
    std::string theirs = step_ > 0 && other.empty() ? metrics_->last_row_run() : "";
    if (theirs == own_run_ ||
        std::find(continued_runs_.begin(), continued_runs_.end(), theirs) != continued_runs_.end())
      theirs.clear();
    if (!theirs.empty()) metrics_->keep_aside();
    if (!metrics_->kept_as().empty())
      log_info("metrics: the rows of an earlier run in " + metrics_->path() + " kept as " +
               metrics_->kept_as() + "; this run starts a new one" +
               (!other.empty()
                    ? " at step " + std::to_string(step_) + " (the run folder's " +
                          "config.yaml was another run's, of checkpoint.dir '" + other + "')"
                : !theirs.empty() ? " at step " + std::to_string(step_) +
                                        " (its last rows were written by the run of log.dir '" +
                                        theirs + "' since this one's)"
                                  : ""));
    // A held-back row (the step's evaluation cut short) was never written by its run: a row of
    // that step there is a resume's that did not finish, written again now.
    const int64_t keep_through = pending_row_.empty() ? step_ : step_ - 1;
    if (step_ > 0 && other.empty() && theirs.empty())
      if (const int64_t n = metrics_->drop_rows_after(keep_through))
        log_info(
            "metrics: removed " + std::to_string(n) + " rows after step " +
            std::to_string(keep_through) + " from " + metrics_->path() +
            (keep_through < step_
                 ? " (step " + std::to_string(step_) +
                       "'s row left by a resume that did not finish, and any after it: "
                       "written again now)"
                 : std::string(" (steps run after the resumed checkpoint was written, run again "
                               "now)")));
    // The start's checks passed (the resume, the metrics file's lock): the run folder's config.
    if (!cfg_.log.dir.empty()) {
      run_config_yaml_ = config_to_yaml(cfg_);
      config_previous_keep(cfg_.log.dir, run_config_yaml_);
      file_write_atomic(cfg_.log.dir + "/config.yaml",
                        {{run_config_yaml_.data(), run_config_yaml_.size()}});
    }
  }
  // SIGINT, SIGTERM, SIGUSR1 and SIGHUP stop the job at a step boundary. mpirun forwards SIGUSR1
  // to every rank (SIGINT and SIGTERM sent to mpirun end the ranks with SIGKILL a second later):
  // `kill -USR1 <mpirun pid>` stops a job. A closed terminal or ssh session stops it the same
  // way, unless the job ignores hang-ups (nohup): then it keeps ignoring them.
  stop_signals_catch();
  loop();
  // A metrics row that failed after the loop's last agreement (on a step that saved or stopped)
  // ends the job as a failure too (every rank asks, whichever way the loop ended).
  stop_agreed();
  metrics_failure_throw();
  return 0;
}

}  // namespace

int train_run(const TrainConfig& config, const TrainRunOptions& options) {
  mpi_ensure_initialized();
  return Trainer(config, options).run();
}

}  // namespace longnet
