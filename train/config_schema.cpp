// The config's key table (see config_schema.h).
#include "longnet/train/config_schema.h"

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstdio>

#include "longnet/core/text.h"
#include "longnet/train/yaml_strict.h"

namespace longnet {
namespace {

constexpr double kMaxCount = double(int64_t(1) << 20);  // ranks, batch sizes, kept files, ...
constexpr double kMaxSteps = double(kMaxTokens);

// Records every key with its spec.
class Recorder : public ConfigVisitor {
 public:
  std::vector<ConfigField> fields;
  void section(const char* name) override { section_ = name; }
  void field(const char* n, int64_t&, const OptionSpec& s) override { add(n, s); }
  void field(const char* n, double&, const OptionSpec& s) override { add(n, s); }
  void field(const char* n, bool&, const OptionSpec& s) override { add(n, s); }
  void field(const char* n, std::string&, const OptionSpec& s) override { add(n, s); }
  void field(const char* n, std::vector<int64_t>&, const OptionSpec& s) override { add(n, s); }
  void field(const char* n, std::vector<double>&, const OptionSpec& s) override { add(n, s); }

 private:
  void add(const char* name, const OptionSpec& s) {
    fields.push_back({section_.empty() ? name : section_ + "." + name, s});
  }
  std::string section_;
};

// Finds where one key lives in a config.
class Finder : public ConfigVisitor {
 public:
  explicit Finder(const std::string& key) : key_(key) {}
  ConfigRef ref;
  bool found = false;
  void section(const char* name) override { section_ = name; }
  void field(const char* n, int64_t& v, const OptionSpec&) override { take(n, &v); }
  void field(const char* n, double& v, const OptionSpec&) override { take(n, &v); }
  void field(const char* n, bool& v, const OptionSpec&) override { take(n, &v); }
  void field(const char* n, std::string& v, const OptionSpec&) override { take(n, &v); }
  void field(const char* n, std::vector<int64_t>& v, const OptionSpec&) override { take(n, &v); }
  void field(const char* n, std::vector<double>& v, const OptionSpec&) override { take(n, &v); }

 private:
  template <typename T>
  void take(const char* name, T* p) {
    if (!found && (section_.empty() ? name : section_ + "." + name) == key_) {
      ref = p;
      found = true;
    }
  }
  std::string key_, section_;
};

std::string parent_of(const std::string& key) {
  auto dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}
std::string leaf_of(const std::string& key) {
  return key.substr(key.rfind('.') + 1);
}

}  // namespace

void config_visit(TrainConfig& c, ConfigVisitor& v) {
  OptionSpec path;  // a non-empty file-system path
  path.path = true;
  OptionSpec maybe_empty_path = path;
  maybe_empty_path.allow_empty = true;
  v.section("model");
  options_visit(c.model, v);
  v.section("engine");
  options_visit(c.engine(), v);
  v.section("");
  v.field("device", c.device, spec_choices({"cpu", "cuda"}));
  v.section("grid");
  v.field("data_parallel", c.grid.data_parallel, spec_range(0, kMaxCount));
  v.field("sequence_parallel", c.grid.sequence_parallel, spec_range(1, kMaxCount));
  v.section("data");
  v.field("path", c.data.path, path);
  v.field("source", c.data.source, maybe_empty_path);
  v.field("tokenizer", c.data.tokenizer, maybe_empty_path);
  v.field("format", c.data.format, spec_choices({"auto", "longnet", "nanogpt", "legacy"}));
  v.field("verify", c.data.verify, spec_choices({"checksums", "sizes"}));
  v.field("seq_len", c.data.seq_len, spec_range(1, double(kMaxTokens)));
  v.field("batch_size", c.data.batch_size, spec_range(1, kMaxCount));
  v.section("optim");
  v.field("lr", c.optim.lr, spec_range(FLT_MIN, 1e3));  // not 0 in float32
  OptionSpec betas = spec_half_open(0, 1);
  betas.list_size = 2;
  v.field("betas", c.optim.betas, betas);
  // Adam adds eps in float32: below the smallest normal float32 it is 0 or a denormal there.
  v.field("eps", c.optim.eps, spec_range(FLT_MIN, 1));
  v.field("weight_decay", c.optim.weight_decay, spec_range(0, 1e3));
  v.field("warmup_steps", c.optim.warmup_steps, spec_range(0, kMaxSteps));
  v.field("end_lr", c.optim.end_lr, spec_range(0, 1e3));
  v.field("decay_power", c.optim.decay_power, spec_above(0, 1e3));
  v.field("grad_clip", c.optim.grad_clip, spec_range(0, 1e30));
  v.section("train");
  v.field("steps", c.train.steps, spec_range(1, kMaxSteps));
  v.field("grad_accumulation", c.train.grad_accumulation, spec_range(1, kMaxCount));
  v.field("precision", c.train.precision, spec_choices({"fp32", "bf16"}));
  // (ATen's CPU generator keeps 32 bits of a seed: larger ones would repeat smaller ones' draws)
  v.field("seed", c.train.seed, spec_range(0, 4294967295.0));
  // (1 stops at the first non-finite step; no value turns the check off)
  v.field("max_bad_steps", c.train.max_bad_steps, spec_range(1, double(INT32_MAX)));
  v.field("collective_timeout_s", c.train.collective_timeout_s, spec_range(0, 1e9));
  v.field("loss", c.train.loss, spec_choices({"auto", "chunked", "plain"}));
  v.section("eval");
  v.field("interval", c.eval.interval, spec_range(0, kMaxSteps));  // 0: no evaluation
  v.field("batches", c.eval.batches, spec_range(1, kMaxCount));
  v.section("checkpoint");
  v.field("dir", c.checkpoint.dir, path);
  v.field("interval", c.checkpoint.interval, spec_range(1, kMaxSteps));
  v.field("keep", c.checkpoint.keep, spec_range(1, kMaxCount));
  v.field("resume", c.checkpoint.resume, path);  // auto | none | a path
  v.section("log");
  v.field("interval", c.log.interval, spec_range(1, kMaxSteps));
  v.field("dir", c.log.dir, maybe_empty_path);          // "": no run folder
  v.field("metrics", c.log.metrics, maybe_empty_path);  // "": <dir>/metrics.jsonl
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> table = [] {
    TrainConfig c;
    Recorder r;
    config_visit(c, r);
    return r.fields;
  }();
  return table;
}

const ConfigField* config_field_find(const std::string& key) {
  for (const auto& f : config_fields())
    if (f.key == key) return &f;
  return nullptr;
}

ConfigRef config_ref(TrainConfig& c, const ConfigField& f) {
  Finder finder(f.key);
  config_visit(c, finder);
  if (!finder.found) throw std::logic_error("config_ref: no key " + f.key);
  return finder.ref;
}

bool config_is_section(const std::string& key) {
  if (key.empty()) return true;
  for (const auto& f : config_fields())
    if (f.key.rfind(key + ".", 0) == 0) return true;
  return false;
}

std::vector<std::string> config_children(const std::string& section) {
  std::vector<std::string> out;
  for (const auto& f : config_fields()) {
    std::string rest;
    if (section.empty())
      rest = f.key;
    else if (f.key.rfind(section + ".", 0) == 0)
      rest = f.key.substr(section.size() + 1);
    else
      continue;
    std::string name = rest.substr(0, rest.find('.'));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

std::string config_unknown_key_message(const std::string& key) {
  const std::string section = parent_of(key), leaf = leaf_of(key);
  // The closest of the section's names that looks like a typo of it.
  std::string guess;
  size_t best = SIZE_MAX;
  for (const auto& name : config_children(section))
    if (looks_like(leaf, name) && edit_distance(leaf, name) < best) {
      best = edit_distance(leaf, name);
      guess = section.empty() ? name : section + "." + name;
    }
  if (guess.empty())  // the right name in the wrong section ("model.lr" for "optim.lr")
    for (const auto& f : config_fields())
      if (leaf_of(f.key) == leaf || looks_like(key, f.key)) {
        guess = f.key;
        break;
      }
  std::string msg = "unknown key";
  if (leaf == "<<")
    msg += "; YAML merge keys ('<<: *anchor') are not supported: write the keys out";
  else if (!guess.empty())
    msg += "; did you mean '" + guess + "'?";
  const auto known = config_children(section);
  if (!known.empty())
    msg += " (" + (section.empty() ? std::string("the top level") : section) +
           " takes: " + join(known, ", ") + ")";
  return msg;
}

std::string config_value_yaml(const ConfigField& f, const TrainConfig& c) {
  ConfigRef r = config_ref(const_cast<TrainConfig&>(c), f);  // read only
  struct Visitor {
    std::string operator()(int64_t* v) const { return std::to_string(*v); }
    std::string operator()(double* v) const { return yaml_double_text(*v); }
    std::string operator()(bool* v) const { return *v ? "true" : "false"; }
    std::string operator()(std::string* v) const {
      std::string s = "\"";
      for (unsigned char ch : *v) {
        if (ch == '"' || ch == '\\') {
          s += '\\';
          s += static_cast<char>(ch);
        } else if (ch < 0x20 || ch == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", ch);
          s += buf;
        } else {
          s += static_cast<char>(ch);
        }
      }
      return s + "\"";
    }
    std::string operator()(std::vector<int64_t>* v) const {
      std::vector<std::string> items;
      for (auto x : *v) items.push_back(std::to_string(x));
      return "[" + join(items, ", ") + "]";
    }
    std::string operator()(std::vector<double>* v) const {
      std::vector<std::string> items;
      for (auto x : *v) items.push_back(yaml_double_text(x));
      return "[" + join(items, ", ") + "]";
    }
  };
  // Enum values are plain words; keep them unquoted like the schema.
  if (!f.spec.choices.empty()) return *std::get<std::string*>(r);
  return std::visit(Visitor{}, r);
}

}  // namespace longnet
