// Loading a LongNetLM for generation and evaluation (see model_load.h).
#include "longnet/train/model_load.h"

#include <ATen/ATen.h>

#include <stdexcept>

#include "longnet/core/parameter_io.h"
#include "longnet/train/checkpoint_files.h"

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

}  // namespace

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
  for (const auto& kv : state.at("model").toGenericDict())
    if (!kv.key().isString() || !kv.value().isTensor())
      throw std::runtime_error(
          "checkpoint " + path + ": its 'model' entry holds " +
          (kv.key().isString() ? "'" + kv.key().toStringRef() + "'" + ", a " + kv.value().tagKind()
                               : std::string("a key that is not a name")) +
          ", not a tensor: it was not written by `longnet train`");
}

LoadedModel model_load(const ModelLoadOptions& o) {
  LoadedModel out;
  if (o.random_init) {
    if (o.config.empty())
      throw std::invalid_argument("model_load: random parameters need a config (its model:)");
    out.config = config_load(o.config, o.overrides);
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
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(
          std::string(e.what()) +
          ". A trainer checkpoint (runs/NAME/checkpoints/step_*.ckpt) loads alone; a parameters "
          "file (a {name: tensor} dict) needs --config with the model it was made for");
    }
    checkpoint_entries_check(state, o.checkpoint);
    auto text = [&](const char* key) {
      return state.contains(key) ? state.at(key).toStringRef() : std::string();
    };
    out.config =
        config_parse(state.at("config").toStringRef(), o.checkpoint + " (config)", o.overrides);
    out.model = LongNetLM(out.config.model);
    params_from_dict(out.model, state.at("model").toGenericDict(), o.checkpoint);
    out.tokenizer = {text("tokenizer"), text("tokenizer_hash")};
    const std::string step =
        state.contains("step") ? " (step " + std::to_string(state.at("step").toInt()) + ")" : "";
    out.source = "checkpoint " + o.checkpoint + step;
  } else {
    if (o.checkpoint.empty())
      throw std::invalid_argument(
          "model_load: give the parameters file (--checkpoint PATH) "
          "that goes with --config " +
          o.config);
    out.config = config_load(o.config, o.overrides);
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
  }
  out.model->eval();
  out.model->to(o.device, o.dtype);
  return out;
}

}  // namespace longnet
