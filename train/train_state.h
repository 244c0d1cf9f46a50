// The state of a training job that its checkpoints hold (format "longnet-train-1"): parameters,
// AdamW's moments and step counts, the next step, the count of bad steps in a row, the data
// position, every rank's generator states, the grid and the resolved config. Saving and resuming
// are collective over the world: rank 0 chooses and writes; every rank restores the same file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "longnet/parallel/process_grid.h"
#include "longnet/train/adamw.h"
#include "longnet/train/config.h"
#include "longnet/train/dataset_check.h"

namespace longnet {

// The "format" entry of the checkpoints this build writes and reads.
constexpr const char* kTrainStateFormat = "longnet-train-1";

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct TrainProgress {
  int64_t step = 0;           // optimizer steps done (the next step's index)
  int64_t bad_steps = 0;      // non-finite steps in a row before it
  int64_t samples = 0;        // training sequences consumed (TokenSampler::position)
  bool eval_pending = false;  // the evaluation due at this step was cut short by a stop signal
  // With eval_pending: the step's metrics row (a JSON object) not yet written, which the resume
  // writes once that evaluation is done, with its val_loss in it ("" when not recorded).
  std::string pending_row;
  // The training data's sizes and sampled checksums (Trainer::data_setup), "" when unknown (a
  // checkpoint of an earlier version): a resume on other data at the same path is said.
  std::string data_fingerprint;
  // The tokenizer of the data it was trained on (spec and content hash; "" when not recorded).
  std::string tokenizer, tokenizer_hash;
  // The checkpoint.dir of the run that wrote it, as its config names it ("" when not known).
  std::string checkpoint_dir;
  // Resumed: the file it was read from.
  std::string resumed_from;
  // The runs (train_run_name) whose checkpoints retention counts as this run's. Resumed: the run
  // that wrote it and those it continued (the checkpoint's "runs"). Saved: the same, beside
  // `run`, this run's own name, fixed at its start (nullopt: from log.dir at the save).
  std::vector<std::string> runs;
  std::optional<std::string> run;
};

// A run as checkpoints name it: its log.dir resolved where it runs ("" when it has none), a
// backslash doubled and bytes that are no UTF-8 escaped as \xNN (Python reads the pickled
// strings as UTF-8).
std::string train_run_name(const std::string& log_dir);

// This rank's generator states (the CPU's, and the GPU's when training there), to take back
// the draws of a step that is abandoned (a stop signal between its micro-steps), so that the
// checkpoint written then resumes as an uninterrupted run goes on.
struct RngStates {
  at::Tensor cpu, cuda;
};
RngStates rng_states_get(const ProcessGrid& grid);
void rng_states_set(const ProcessGrid& grid, const RngStates& states);

// Writes checkpoint `progress.step` into cfg.checkpoint.dir (keeping cfg.checkpoint.keep), then
// waits for rank 0 on every rank. Every rank must call it.
// `tokenizer` (spec and content hash of the tokenizer the training data was made with; spec ""
// when not known) is recorded beside them, so that generation and evaluation read text as
// training did even when the dataset at data.path changes later.
void train_state_save(ProcessGrid& grid, const TrainConfig& cfg, const NamedTensors& params,
                      const AdamW& optim, const TrainProgress& progress,
                      const RecordedTokenizer& tokenizer);

// With checkpoint.resume "none": refuses a checkpoint.dir that already holds checkpoints (or a
// directory in a checkpoint's name), as train_state_resume does, but at the start, before the
// data is built and the model made. Every rank must call it; nothing otherwise.
void train_state_start_guard(ProcessGrid& grid, const TrainConfig& cfg);

// The checkpoint that cfg.checkpoint.resume names ("auto": the newest one in the directory that
// verifies; "none"; or a path), checked against this model (parameter names and shapes),
// restored into params, optim and this rank's generators. nullopt when there is nothing to
// resume. Throws naming the file and the mismatch before changing anything. Every rank must call
// it. A checkpoint of another data x sequence grid resumes too: parameters and optimizer state
// are replicated on every rank, the data position counts sequences of the whole job; the
// generators, which are per rank, are then seeded from (seed, step, rank) instead.
std::optional<TrainProgress> train_state_resume(ProcessGrid& grid, const TrainConfig& cfg,
                                                const NamedTensors& params, AdamW& optim);

}  // namespace longnet
