// Experiment configs: the YAML schema of a training run. The `model:` section is core's
// LongNetLMOptions and `engine:` its attention's EngineOptions (core/options.h), bound by the
// names their visit functions give; the other sections are the plain structs below, declared the
// same way (config_schema.h). Loading is strict (unknown/duplicate keys, wrong types and
// yaml-cpp's quirks are errors naming file:line and the dotted key); command-line overrides get
// the same checks; cross-field rules are their owners' (core, parallel/sequence_layout.h, and
// this file's for training), with file:line added.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

struct GridConfig {
  int64_t data_parallel = 0;  // 0: world size / sequence_parallel
  int64_t sequence_parallel = 1;
};

struct DataConfig {
  // A dataset directory (or its manifest.json) made by `longnet data build --out`, a directory
  // of llm.c / nanoGPT .bin shards, or a byte-token file (train/token_dataset.h).
  std::string path = "data/usr_include.tokens";
  std::string source;  // built into `path` when missing (unset or "": never)
  // The tokenizer spec (KIND[:PATH], train/tokenizer.h) the dataset must have been built with:
  // checked against the manifest; "" takes the manifest's. With `source`, the tokenizer a missing
  // `path` is built with (none: the byte-token file).
  std::string tokenizer = "";
  std::string format = "auto";       // auto | longnet | nanogpt | legacy
  std::string verify = "checksums";  // checksums (CRC-32 of every shard at start) | sizes
  int64_t seq_len = 2048;            // tokens per sequence, before the sequence-parallel split
  int64_t batch_size = 1;            // sequences per data-parallel rank per micro-step
};

struct OptimConfig {
  double lr = 6.0e-4;
  std::vector<double> betas = {0.9, 0.98};
  double eps = 1.0e-8;
  double weight_decay = 0.01;
  int64_t warmup_steps = 750;
  double end_lr = 0.0;  // polynomial decay from lr to end_lr after warm-up
  double decay_power = 1.0;
  double grad_clip = 2.0;  // 0 = off
};

struct TrainLoopConfig {
  int64_t steps = 1000;  // optimizer steps
  int64_t grad_accumulation = 1;
  std::string precision = "fp32";  // fp32 | bf16 (bf16 only on cuda)
  int64_t seed = 1234;
  int64_t max_bad_steps = 5;  // consecutive NaN/inf steps tolerated
  // A collective unfinished after this many seconds ends the job (parallel/watchdog.h); 0 waits
  // forever. Keep it above the longest step.
  double collective_timeout_s = 600.0;
  // The output layer and loss: plain (whole logits, then cross-entropy), chunked
  // (core/chunked_cross_entropy.h: logits a chunk of rows at a time, never whole), or auto:
  // chunked when model.vocab_size > 8 x d_model (the logits would outweigh the hidden states
  // several times over), plain otherwise. Both give the same numbers up to rounding.
  std::string loss = "auto";
};

struct EvalConfig {
  int64_t interval = 100;  // steps between evaluations; 0 turns evaluation off
  int64_t batches = 8;
};

struct CheckpointConfig {
  // Not given: <log.dir>/checkpoints (config_parse), so a run's log.dir alone keeps it apart.
  std::string dir = "runs/default/checkpoints";
  int64_t interval = 500;
  int64_t keep = 3;
  std::string resume = "auto";  // auto | none | a checkpoint path
};

// The run folder `dir` holds the resolved config.yaml, train.log (a copy of rank 0's output)
// and, unless `metrics` names another file, metrics.jsonl. An empty dir: no run folder (then
// `metrics` must be given).
struct LogConfig {
  int64_t interval = 10;
  std::string dir = "runs/default";
  std::string metrics;  // "" : <dir>/metrics.jsonl
};

struct TrainConfig {
  LongNetLMOptions model;      // `engine:` is model.layer.attention.engine
  std::string device = "cpu";  // cpu | cuda
  GridConfig grid;
  DataConfig data;
  OptimConfig optim;
  TrainLoopConfig train;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  LogConfig log;

  // Where each set key came from, for messages: dotted key -> "file.yaml:12" or
  // "command-line override 'k=v'". Keys left at their default are absent. Not part of ==.
  std::map<std::string, std::string> origin;

  EngineOptions& engine() { return model.layer.attention.engine; }
  const EngineOptions& engine() const { return model.layer.attention.engine; }
};

// Compares every setting (not `origin`).
bool operator==(const TrainConfig& a, const TrainConfig& b);
inline bool operator!=(const TrainConfig& a, const TrainConfig& b) {
  return !(a == b);
}

// Reads `path` (an empty path means "defaults only"), then applies `overrides`, each
// "dotted.key=value" with the value a YAML scalar or flow collection ("optim.lr=3e-4",
// "model.segment_lengths=[64,128]"). Checks keys, types and each value's allowed range; throws
// std::invalid_argument with one message naming file:line (or the override) and the key.
// Cross-field rules are config_check's.
TrainConfig config_load(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text; `name` stands for the file in messages.
TrainConfig config_parse(const std::string& text, const std::string& name,
                         const std::vector<std::string>& overrides = {});
// config_parse, after a trial parse in a child process limited to 10 s and 2 GiB: yaml-cpp
// loops forever on some malformed YAML, which this turns into an error. config_load uses it.
TrainConfig config_parse_guarded(const std::string& text, const std::string& name,
                                 const std::vector<std::string>& overrides = {});

// Cross-field rules for a job of `world_size` ranks: the model's (lm_options_check), the
// sequence layout's (SequenceLayout), the grid against the world size, and training's (precision
// on device, warm-up shorter than the run, ...). Throws std::invalid_argument naming where the
// key was set, the key, the values and what would work.
void config_check(const TrainConfig& config, int world_size);
// The model's rules alone (lm_options_check), with where each key was set: for the commands that
// only build the model (generate, eval, export, bench generate).
void config_check_model(const TrainConfig& config);

// The data rules, once the dataset is open: model.vocab_size must cover the data's vocabulary
// (`data_vocab`, described by `data_what`, e.g. "the dataset's tokenizer tiktoken:... (manifest
// data/x/manifest.json)"). Throws std::invalid_argument naming both values and where they were
// set.
void config_check_vocab(const TrainConfig& config, int64_t data_vocab,
                        const std::string& data_what);

// Throws std::invalid_argument "<where key was set>: <key>: msg" as config_check's rules do.
[[noreturn]] void config_fail(const TrainConfig& config, const std::string& key,
                              const std::string& msg);

// Whether training computes the loss with the chunked output layer (train.loss, rule above).
bool config_chunked_loss(const TrainConfig& config);

// The data-parallel size of the grid: grid.data_parallel, or world_size / sequence_parallel
// when it is 0. Assumes config_check passed.
int64_t config_data_parallel(const TrainConfig& config, int world_size);

// The metrics file: log.metrics, or <log.dir>/metrics.jsonl when that is empty.
std::string config_metrics_path(const TrainConfig& config);

// The number of ranks the config's grid asks for: data_parallel x sequence_parallel, or
// sequence_parallel alone when data_parallel is 0 (inferred; one data-parallel group then).
int64_t config_rank_count(const TrainConfig& config);

// The resolved config as YAML (every key, schema order); config_load of it gives an equal config.
std::string config_to_yaml(const TrainConfig& config);

}  // namespace longnet
