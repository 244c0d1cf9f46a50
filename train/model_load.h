// A trained LongNetLM from its files, for generation and evaluation: a `longnet train`
// checkpoint (which carries its resolved config), or a parameters file (core/parameter_io.h,
// e.g. written from Python) with the YAML config whose `model:` section built it.
#pragma once

#include <ATen/core/Dict.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <optional>
#include <string>
#include <vector>

#include "longnet/core/longnet_model.h"
#include "longnet/train/config.h"
#include "longnet/train/dataset_check.h"

namespace longnet {

struct ModelLoadOptions {
  std::string checkpoint;  // a trainer checkpoint, or a parameters file (then config is needed)
  std::string config;      // YAML config for a parameters file; "" for a trainer checkpoint
  std::vector<std::string> overrides;  // "model.engine.backend=flash"-style, for engine choices
  c10::Device device = c10::Device(c10::kCPU);
  c10::ScalarType dtype = c10::kFloat;  // the parameters' dtype after loading
  bool random_init = false;  // no checkpoint: the config's model with fresh parameters (tests)
  int64_t seed = 0;          // of random_init
  // Said when `checkpoint` is no trainer checkpoint and no config is given.
  std::string not_a_checkpoint_hint =
      "A trainer checkpoint (runs/NAME/checkpoints/step_*.ckpt) loads alone; a parameters file "
      "(a {name: tensor} dict) needs --config with the model it was made for";
};

struct LoadedModel {
  LongNetLM model{nullptr};  // in eval mode, on the device, in the dtype
  TrainConfig config;        // the checkpoint's config, or the config file's
  std::string source;        // what was loaded, for logs: "checkpoint X (step 1000)"
  // The tokenizer a trainer checkpoint records its training data was made with (spec and content
  // hash); empty for parameters files and checkpoints of earlier versions.
  RecordedTokenizer tokenizer;
  int64_t step = -1;  // a trainer checkpoint's step; -1 for the other sources
  // A trainer checkpoint's record of its training data (sizes and sampled CRC-32s of each split,
  // as Trainer writes it); "" when it has none.
  std::string data_fingerprint;
};

// The largest magnitude in `t` when casting it to `dtype` would turn some finite value infinite
// (float16's largest is 65,504; bfloat16's and float32's ~3.4e38); nullopt when every value fits.
std::optional<double> dtype_overflow(const at::Tensor& t, c10::ScalarType dtype);

// Checks the entries a reader of a trainer checkpoint (checkpoint_read) uses, before it uses
// them: "config" a string, "model" a dict of tensors, and where present "step" an integer and
// "tokenizer", "tokenizer_hash" strings. Throws std::runtime_error naming `path` and the entry.
void checkpoint_entries_check(const c10::impl::GenericDict& state, const std::string& path);

// Throws std::runtime_error / std::invalid_argument naming the file and the problem (missing,
// not a checkpoint, parameters that do not fit the config's model) and what would work.
LoadedModel model_load(const ModelLoadOptions& o);

// The tokenizer a loaded model's training data was made with: the checkpoint's record, else what
// its config tells (config_data_tokenizer: the dataset at data.path as it is now).
RecordedTokenizer model_tokenizer(const LoadedModel& loaded);

}  // namespace longnet
