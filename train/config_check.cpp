// Cross-field rules of a config (see config_check in config.h). The model's and the sequence
// layout's rules belong to their owners (core/options.h, parallel/sequence_layout.h); this file
// maps their errors to config keys with file:line, and adds the grid's and training's own rules.
#include <algorithm>
#include <cctype>
#include <cfloat>
#include <sstream>
#include <stdexcept>
#include <string>

#include "longnet/core/file_util.h"
#include "longnet/core/int_math.h"
#include "longnet/parallel/sequence_layout.h"
#include "longnet/train/config.h"
#include "longnet/train/tokenizer.h"
#include "longnet/train/yaml_strict.h"

namespace longnet {
namespace {

// "file.yaml:4" or "command-line override '...'" where key (or its list) was set, or "".
std::string origin_of(const TrainConfig& c, const std::string& key) {
  auto it = c.origin.find(key.substr(0, key.find('[')));
  return it == c.origin.end() ? "" : it->second;
}

// Throws "<where key was set>: <key>: msg", adding where the related keys were set.
[[noreturn]] void fail_rule(const TrainConfig& c, const std::string& key, const std::string& msg,
                            const std::vector<std::string>& related = {}) {
  const std::string where = origin_of(c, key);
  std::string also;
  for (const auto& r : related)
    if (!origin_of(c, r).empty()) also += (also.empty() ? "" : ", ") + r + " at " + origin_of(c, r);
  throw std::invalid_argument((where.empty() ? "config (default value)" : where) + ": " + key +
                              ": " + msg + (also.empty() ? "" : " (" + also + ")"));
}

// Runs an owner's check; its OptionsError becomes a config error on the key that `key_of` maps
// its field to.
template <typename Check, typename KeyOf>
void owned(const TrainConfig& c, Check check, KeyOf key_of) {
  try {
    check();
  } catch (const OptionsError& e) {
    std::vector<std::string> related;
    for (const auto& r : e.related()) related.push_back(key_of(r));
    fail_rule(c, key_of(e.field()), e.detail(), related);
  }
}

std::string model_key(const std::string& field) {
  return field.rfind("engine.", 0) == 0 ? field : "model." + field;
}

std::string layout_key(const std::string& field) {
  if (field == "seq_len") return "data.seq_len";
  if (field == "sequence_parallel") return "grid.sequence_parallel";
  return "model." + field;
}

std::string number_text(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

std::string mention(const TrainConfig& c, const std::string& key, const std::string& value) {
  const std::string at = origin_of(c, key);
  return key + " = " + value + " (" + (at.empty() ? "default" : at) + ")";
}

void check_grid(const TrainConfig& c, int world) {
  const int64_t sp = c.grid.sequence_parallel, dp = c.grid.data_parallel;
  if (world % sp != 0) {
    std::string divisors;
    for (int64_t d = 1; d <= world; ++d)
      if (world % d == 0) divisors += (divisors.empty() ? "" : ", ") + std::to_string(d);
    fail_rule(c, "grid.sequence_parallel",
              std::to_string(sp) + " does not divide the world size " + std::to_string(world) +
                  " (ranks in this job); use one of {" + divisors + "} or launch a multiple of " +
                  std::to_string(sp) + " ranks");
  }
  if (dp != 0 && dp * sp != world)
    fail_rule(c, "grid.data_parallel",
              "data_parallel x sequence_parallel = " + std::to_string(dp) + " x " +
                  std::to_string(sp) + " = " + std::to_string(dp * sp) + " but the job has " +
                  std::to_string(world) + " ranks; set grid.data_parallel: 0 (inferred as " +
                  std::to_string(world / sp) + ") or launch with mpirun -np " +
                  std::to_string(dp * sp));
}

// The vocabulary the data will have, when the config alone says: the byte tokenizers' and the
// byte-token file's. (Other tokenizers and datasets are checked when they are opened:
// config_check_vocab.)
void check_vocab_static(const TrainConfig& c) {
  const std::string& t = c.data.tokenizer;
  if (!t.empty()) try {
      tokenizer_spec_check(t);
    } catch (const std::invalid_argument& e) {
      fail_rule(c, "data.tokenizer", e.what());
    }
  // A byte-token file holds bytes: another tokenizer is refused before one is built or read.
  if (c.data.format == "legacy" && !t.empty() && t != "bytes")
    fail_rule(c, "data.tokenizer",
              "'" + t +
                  "' cannot make a byte-token file (data.format: legacy holds the bytes of its "
                  "text): leave data.tokenizer empty, or set data.format: auto to use a longnet "
                  "dataset built with it",
              {"data.format"});
  if (t == "bytes" || t == "bytes:eot")
    config_check_vocab(c, t == "bytes" ? 256 : 257,
                       "the vocabulary of " + mention(c, "data.tokenizer", t));
  else if (c.data.format == "legacy")
    config_check_vocab(
        c, 256,
        "the 256 byte values of " + mention(c, "data.format", c.data.format) + " token files");
}

void check_training(const TrainConfig& c, int world) {
  check_vocab_static(c);
  // The clip factor clip / (norm + 1e-6) is applied in float32: below its smallest normal it
  // is 0 or a denormal there, and every step would update nothing.
  if (c.optim.grad_clip > 0 && c.optim.grad_clip < FLT_MIN)
    fail_rule(c, "optim.grad_clip",
              number_text(c.optim.grad_clip) +
                  " is below the smallest normal float32 (1.2e-38): the clipped gradients would "
                  "all be 0; give 0 (no clipping) or a norm such as 1.0");
  if (c.log.dir.empty() && c.log.metrics.empty())
    fail_rule(c, "log.dir",
              "is empty (no run folder) and so is log.metrics; name a run folder (e.g. log.dir: "
              "runs/my_run) or a metrics file",
              {"log.metrics"});
  // A positive limit under a second fails the first collective that meets any delay (a rank's
  // data load, a first CUDA launch), after training started; 0 is "no limit".
  if (c.train.collective_timeout_s > 0 && c.train.collective_timeout_s < 1)
    fail_rule(c, "train.collective_timeout_s",
              "is " + number_text(c.train.collective_timeout_s) +
                  " s, too short for a collective to finish (ranks wait on each other's data "
                  "loads and first launches); give at least 1 (seconds), or 0 for no limit");
  {  // a mode in the wrong case ("AUTO") is no path either: refused here, before any data loads
    std::string lower = c.checkpoint.resume;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const std::string& r = c.checkpoint.resume;
    const bool mode = r == "auto" || r == "none";
    const PathKind kind = mode ? PathKind::kFile : path_kind(r);
    if (kind == PathKind::kMissing)
      fail_rule(c, "checkpoint.resume",
                "'" + r + "' is neither a checkpoint file (nothing is there) nor a mode: the " +
                    "modes are 'auto' (the newest checkpoint of checkpoint.dir) and 'none' (" +
                    (lower == "auto" || lower == "none" ? "lower case" : "start from step 0") +
                    "); anything else is a checkpoint's path");
    if (kind == PathKind::kDirectory)
      fail_rule(c, "checkpoint.resume",
                "'" + r +
                    "' is a directory; give a checkpoint file in it (step_N.ckpt), or "
                    "checkpoint.resume: auto with checkpoint.dir: " +
                    r + " (its newest checkpoint)");
  }
  if (c.train.precision == "bf16" && c.device != "cuda")
    fail_rule(c, "train.precision",
              "bf16 needs device: cuda but " + mention(c, "device", c.device) +
                  "; use precision fp32 on the CPU");
  if (c.optim.warmup_steps >= c.train.steps)
    fail_rule(c, "optim.warmup_steps",
              std::to_string(c.optim.warmup_steps) + " is not smaller than " +
                  mention(c, "train.steps", std::to_string(c.train.steps)) +
                  "; use fewer warm-up steps (e.g. " + std::to_string(c.train.steps / 10) +
                  ") or more steps");
  if (c.optim.end_lr > c.optim.lr)
    fail_rule(c, "optim.end_lr",
              double_text(c.optim.end_lr) + " is larger than " +
                  mention(c, "optim.lr", double_text(c.optim.lr)) +
                  "; the schedule decays from lr to end_lr, so use end_lr <= lr (e.g. 0)");
  // Tokens per optimizer step over the whole job, and the sizes of one forward, must fit int64.
  const int64_t dp = c.grid.data_parallel ? c.grid.data_parallel : world / c.grid.sequence_parallel;
  if (!product_checked({dp, c.data.batch_size, c.train.grad_accumulation, c.data.seq_len}) ||
      !product_checked({c.data.batch_size, c.data.seq_len, c.model.layer.dim_feedforward}) ||
      !product_checked({c.data.batch_size, c.data.seq_len, c.model.vocab_size}))
    fail_rule(c, "data.batch_size",
              "data parallel x batch_size x grad_accumulation x seq_len (and batch_size x "
              "seq_len x the widest layer) overflow 64-bit integers; use smaller sizes",
              {"data.seq_len", "train.grad_accumulation"});
}

}  // namespace

void config_fail(const TrainConfig& c, const std::string& key, const std::string& msg) {
  fail_rule(c, key, msg);
}

void config_check_vocab(const TrainConfig& c, int64_t data_vocab, const std::string& data_what) {
  if (c.model.vocab_size < data_vocab)
    fail_rule(c, "model.vocab_size",
              std::to_string(c.model.vocab_size) + " is smaller than " + data_what + ", " +
                  std::to_string(data_vocab) +
                  " ids; set model.vocab_size: " + std::to_string(data_vocab) + " (or more)");
}

bool config_chunked_loss(const TrainConfig& c) {
  if (c.train.loss != "auto") return c.train.loss == "chunked";
  return c.model.vocab_size > 8 * c.model.layer.d_model;
}

void config_check_model(const TrainConfig& c) {
  owned(
      c, [&] { lm_options_check(c.model); }, model_key);
}

void config_check(const TrainConfig& config, int world_size) {
  if (world_size < 1) throw std::logic_error("config_check: world_size must be >= 1");
  const TrainConfig& c = config;
  config_check_model(c);
  owned(
      c,
      [&] {
        SequenceLayout(c.data.seq_len, c.grid.sequence_parallel,
                       c.model.layer.attention.segment_lengths);
      },
      layout_key);
  owned(
      c,
      [&] {
        // The encoder of an encoder-decoder attends without the causal mask.
        xpos_scales_check(c.data.seq_len, c.model.layer.attention.segment_lengths,
                          XposPrecision::kFloat32, kXposScaleBase,
                          c.model.variant != "encoder_decoder");
      },
      layout_key);
  check_grid(c, world_size);
  check_training(c, world_size);
}

}  // namespace longnet
