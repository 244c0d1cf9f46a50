// The config's keys in one table that loading, overrides, the resolved YAML, comparisons and
// messages all read. It is built by visiting a TrainConfig: `model:` and `engine:` through core's
// options_visit (core/options.h), the other sections through config_visit's own declarations, so
// every key, its type, default and allowed values are written once.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "longnet/core/options.h"
#include "longnet/train/config.h"

namespace longnet {

// An OptionVisitor that is also told where each section starts ("" for the top level).
class ConfigVisitor : public OptionVisitor {
 public:
  virtual void section(const char* name) = 0;
};

// Visits every section and field of c, in the resolved YAML's order.
void config_visit(TrainConfig& c, ConfigVisitor& v);

using ConfigRef = std::variant<int64_t*, double*, bool*, std::string*, std::vector<int64_t>*,
                               std::vector<double>*>;

struct ConfigField {
  std::string key;  // dotted path: "optim.lr", "device"
  OptionSpec spec;
};

// Every key, in schema order.
const std::vector<ConfigField>& config_fields();
// The field named key, or null.
const ConfigField* config_field_find(const std::string& key);
// Where field f lives in c.
ConfigRef config_ref(TrainConfig& c, const ConfigField& f);

// Sections are the dotted prefixes of the keys; "" is the top level.
bool config_is_section(const std::string& key);
// Names directly under `section`, in schema order.
std::vector<std::string> config_children(const std::string& section);
// "unknown key; did you mean 'model.num_heads'? (model takes: ...)"
std::string config_unknown_key_message(const std::string& key);

// The value of f in c as YAML text (strings quoted and escaped; enum values plain).
std::string config_value_yaml(const ConfigField& f, const TrainConfig& c);

}  // namespace longnet
