// Loading a LongNetLM for generation and evaluation (see model_load.h).
#include "longnet/train/model_load.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "longnet/core/device_memory.h"
#include "longnet/core/file_util.h"
#include "longnet/core/options.h"
#include "longnet/core/parameter_io.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/train_state.h"

namespace longnet {

namespace {

// The parameters of a trainer checkpoint's "model" entry into `model`, checked first.
void params_from_dict(LongNetLM& model, const c10::impl::GenericDict& params,
                      const std::string& path) {
  auto named = model->named_parameters();
  for (const auto& p : named) {
    if (!params.contains(p.key()))
      throw std::runtime_error("checkpoint " + path + " has no parameter '" + p.key() +
                               "' although its config builds a model with it");
    const auto& t = params.at(p.key()).toTensor();
    if (!t.is_floating_point())
      throw std::runtime_error("checkpoint " + path + ": parameter '" + p.key() + "' is " +
                               std::string(c10::toString(t.scalar_type())) +
                               ", not a floating-point tensor");
    if (t.sizes() != p.value().sizes())
      throw std::runtime_error("checkpoint " + path + ": parameter '" + p.key() + "' has shape " +
                               c10::str(t.sizes()) + " but its config's model has " +
                               c10::str(p.value().sizes()));
  }
  if (params.size() != named.size())
    throw std::runtime_error("checkpoint " + path + " holds " + std::to_string(params.size()) +
                             " parameters, the model of its config " +
                             std::to_string(named.size()));
  at::NoGradGuard no_grad;
  for (auto& p : named) p.value().copy_(params.at(p.key()).toTensor());
}

// Whether `path` is a regular file that starts as a safetensors file does (a little-endian
// header length, then the JSON header's '{').
bool looks_safetensors(const std::string& path) {
  if (path_kind(path) != PathKind::kFile) return false;
  std::ifstream in(path, std::ios::binary);
  char head[9] = {};
  return in.read(head, sizeof(head)) && head[8] == '{';
}

}  // namespace

std::optional<double> dtype_overflow(const at::Tensor& t, c10::ScalarType dtype) {
  if (!t.is_floating_point() || c10::elementSize(dtype) >= c10::elementSize(t.scalar_type()) ||
      !at::isfinite(t).all().item<bool>())
    return std::nullopt;
  if (at::isfinite(t.to(dtype)).all().item<bool>()) return std::nullopt;
  return t.abs().max().item<double>();
}

RecordedTokenizer model_tokenizer(const LoadedModel& loaded) {
  return loaded.tokenizer.spec.empty() ? config_data_tokenizer(loaded.config) : loaded.tokenizer;
}

void checkpoint_entries_check(const c10::impl::GenericDict& state, const std::string& path) {
  if (!state.contains("config") || !state.contains("model"))
    throw std::runtime_error("checkpoint " + path +
                             " has no 'config' or 'model' entry: it was not written by "
                             "`longnet train`");
  // Entries of the wrong type: refused by name, not left to the IValue's own error.
  auto check = [&](const char* key, bool (c10::IValue::*is)() const, const char* want) {
    if (state.contains(key) && !(state.at(key).*is)())
      throw std::runtime_error("checkpoint " + path + ": its '" + key + "' entry is not " + want +
                               " (" + state.at(key).tagKind() +
                               "): it was not written by `longnet train`, or was altered");
  };
  check("config", &c10::IValue::isString, "a string");
  check("model", &c10::IValue::isGenericDict, "a dict of tensors");
  check("step", &c10::IValue::isInt, "an integer");
  check("tokenizer", &c10::IValue::isString, "a string");
  check("tokenizer_hash", &c10::IValue::isString, "a string");
  check("format", &c10::IValue::isString, "a string");
  if (state.contains("format") && state.at("format").toStringRef() != kTrainStateFormat)
    throw std::runtime_error("checkpoint " + path + " has format '" +
                             state.at("format").toStringRef() + "'; this build reads '" +
                             kTrainStateFormat + "' (write it with this version of longnet)");
  if (state.contains("step") && state.at("step").toInt() < 0)
    throw std::runtime_error("checkpoint " + path + ": its step is " +
                             std::to_string(state.at("step").toInt()) +
                             ", below 0: it was not written by `longnet train`, or was altered");
  for (const auto& kv : state.at("model").toGenericDict())
    if (!kv.key().isString() || !kv.value().isTensor())
      throw std::runtime_error(
          "checkpoint " + path + ": its 'model' entry holds " +
          (kv.key().isString() ? "'" + kv.key().toStringRef() + "'" + ", a " + kv.value().tagKind()
                               : std::string("a key that is not a name")) +
          ", not a tensor: it was not written by `longnet train`");
}

namespace {

// The model is built in float32 on the CPU, then moved to the device in the run's dtype: a
// config (or a checkpoint's) too large for either is refused here, with the numbers, not by the
// allocator partway through.
void model_memory_check(const TrainConfig& c, const ModelLoadOptions& o,
                        const std::string& source) {
  config_check_model(c);  // (a model that cannot be built is refused with its key first)
  const LongNetLMOptions& m = c.model;
  const double params = lm_parameter_estimate(m);
  const double element = double(c10::elementSize(o.dtype));
  char count[32];
  std::snprintf(count, sizeof(count), "%.3g", params);
  const std::string what = "the model of " + source + " (" + count + " parameters)";
  const std::string fix =
      "use a smaller model (model.vocab_size, model.d_model, model.dim_feedforward, "
      "model.num_layers)";
  const bool cpu_copy = o.device.is_cpu() && o.dtype != at::kFloat;
  device_memory_check(params * (4 + (cpu_copy ? element : 0)), c10::Device(c10::kCPU), what, fix);
  if (!o.device.is_cpu()) device_memory_check(params * element, o.device, what, fix);
}

}  // namespace

LoadedModel model_load(const ModelLoadOptions& o) {
  LoadedModel out;
  if (o.random_init) {
    if (o.config.empty())
      throw std::invalid_argument("model_load: random parameters need a config (its model:)");
    out.config = config_load(o.config, o.overrides);
    model_memory_check(out.config, o, o.config);
    at::manual_seed(static_cast<uint64_t>(o.seed));
    out.model = LongNetLM(out.config.model);
    out.source =
        "random parameters (seed " + std::to_string(o.seed) + ") for the model of " + o.config;
  } else if (o.config.empty()) {
    if (o.checkpoint.empty())
      throw std::invalid_argument("model_load: give a checkpoint (--checkpoint PATH)");
    c10::impl::GenericDict state(c10::StringType::get(), c10::AnyType::get());
    try {
      state = checkpoint_read(o.checkpoint);
    } catch (const CheckpointKindError& e) {
      // (a damaged checkpoint, or one too large for the memory here, is said as such alone)
      if (looks_safetensors(o.checkpoint))
        throw std::runtime_error(o.checkpoint +
                                 " looks like a safetensors file (as `longnet export` writes), "
                                 "which longnet does not load: give the checkpoint it was "
                                 "exported from (runs/NAME/checkpoints/step_*.ckpt)");
      throw std::runtime_error(std::string(e.what()) + ". " + o.not_a_checkpoint_hint);
    }
    checkpoint_entries_check(state, o.checkpoint);
    auto text = [&](const char* key) {
      return state.contains(key) ? state.at(key).toStringRef() : std::string();
    };
    out.config =
        config_parse(state.at("config").toStringRef(), o.checkpoint + " (config)", o.overrides);
    model_memory_check(out.config, o, "checkpoint " + o.checkpoint);
    out.model = LongNetLM(out.config.model);
    params_from_dict(out.model, state.at("model").toGenericDict(), o.checkpoint);
    out.tokenizer = {text("tokenizer"), text("tokenizer_hash")};
    if (state.contains("data_fingerprint") && state.at("data_fingerprint").isString())
      out.data_fingerprint = state.at("data_fingerprint").toStringRef();
    const std::string step =
        state.contains("step") ? " (step " + std::to_string(state.at("step").toInt()) + ")" : "";
    out.source = "checkpoint " + o.checkpoint + step;
    if (state.contains("step")) out.step = state.at("step").toInt();
  } else {
    if (o.checkpoint.empty())
      throw std::invalid_argument(
          "model_load: give the parameters file (--checkpoint PATH) "
          "that goes with --config " +
          o.config);
    out.config = config_load(o.config, o.overrides);
    model_memory_check(out.config, o, o.config);
    out.model = LongNetLM(out.config.model);
    try {
      parameters_load(*out.model, o.checkpoint);
    } catch (const c10::Error& e) {
      bool is_checkpoint = false;
      try {
        checkpoint_read(o.checkpoint);
        is_checkpoint = true;
      } catch (const std::exception&) {
      }
      if (is_checkpoint)
        throw std::runtime_error(o.checkpoint +
                                 " is a trainer checkpoint, which carries its own config: leave "
                                 "out --config " +
                                 o.config);
      throw std::runtime_error(std::string(e.what_without_backtrace()) +
                               " (the model is the `model:` section of " + o.config + ")");
    }
    out.source = "parameters " + o.checkpoint + " with the model of " + o.config;
  }
  // Non-finite parameters would generate and score nonsense without an error.
  if (!o.random_init) {
    at::NoGradGuard no_grad;
    for (const auto& p : out.model->named_parameters())
      if (!at::isfinite(p.value()).all().item<bool>())
        throw std::runtime_error(
            out.source + ": parameter '" + p.key() + "' holds " +
            std::to_string(at::logical_not(at::isfinite(p.value())).sum().item<int64_t>()) +
            " NaN or infinite value(s); the model would produce nonsense. Use an earlier "
            "checkpoint (training skips non-finite steps, so a file like this was damaged or "
            "made elsewhere)");
    for (const auto& p : out.model->named_parameters())
      if (const auto most = dtype_overflow(p.value(), o.dtype))
        throw std::runtime_error(out.source + ": parameter '" + p.key() + "' holds values up to " +
                                 c10::str(*most) + " in absolute value, past the range of " +
                                 c10::toString(o.dtype) +
                                 (o.dtype == at::kHalf ? " (largest 65504)" : "") +
                                 ": in it the model would compute with infinities. Use --dtype " +
                                 (o.dtype == at::kHalf ? "bfloat16 or float32" : "float32"));
  }
  out.model->eval();
  out.model->to(o.device, o.dtype);
  return out;
}

}  // namespace longnet
