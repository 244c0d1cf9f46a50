// Strict YAML configs (see config.h). One table of fields drives loading, overrides and the
// resolved YAML, so the three cannot disagree. yaml-cpp is lenient (anything converts to a
// string, duplicate keys are kept, `010` and `yes` mean different things in YAML 1.1 and 1.2),
// so every scalar is parsed here from its raw text and quoting.
#include "train/config.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <variant>

namespace longnet {
namespace {

// ---- messages ------------------------------------------------------------------------------

[[noreturn]] void fail(const std::string& where, const std::string& key, const std::string& msg) {
  throw std::invalid_argument(where + ": " + key + ": " + msg);
}

// Shortest text that reads back to the same double.
std::string format_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

std::string format_double_yaml(double v) {
  std::string s = format_double(v);
  // Keep it visibly a float, also to YAML 1.1 readers (PyYAML): "0.0" not "0", "6.0e-04" not
  // "6e-04".
  if (s.find('.') == std::string::npos) {
    auto e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

// How a value looked in the file, for "got ..." in messages.
std::string describe(const YAML::Node& n) {
  if (n.IsNull()) return "an empty value";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  if (n.Tag() == "!") return "the quoted string \"" + n.Scalar() + "\"";
  return "'" + n.Scalar() + "'";
}

// Where a value came from: a file (with the node's line) or one command-line override.
struct Source {
  std::string file;      // set for a config file
  std::string override;  // "optim.lr=3e-4" for an override
  std::string at(const YAML::Mark& mark) const {
    if (!override.empty()) return "command-line override '" + override + "'";
    if (mark.is_null()) return file;
    return file + ":" + std::to_string(mark.line + 1);
  }
};

// ---- value ranges --------------------------------------------------------------------------

struct Range {
  double lo = -HUGE_VAL, hi = HUGE_VAL;
  bool lo_open = false, hi_open = false;
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string text() const {
    if (hi == HUGE_VAL) return std::string(lo_open ? "> " : ">= ") + format_double(lo);
    return std::string("in ") + (lo_open ? "(" : "[") + format_double(lo) + ", " +
           format_double(hi) + (hi_open ? ")" : "]");
  }
};
Range at_least(double lo) {
  return Range{lo, HUGE_VAL, false, false};
}
Range above(double lo) {
  return Range{lo, HUGE_VAL, true, false};
}
Range half_open(double lo, double hi) {
  return Range{lo, hi, false, true};
}

// ---- scalar parsing from raw text ----------------------------------------------------------

const std::regex kDecimalInt(R"([-+]?(0|[1-9][0-9]*))");
const std::regex kLeadingZeroInt(R"([-+]?0[0-9_]+)");
const std::regex kPrefixedInt(R"([-+]?0[xXoObB][0-9a-fA-F_]+)");
const std::regex kDecimalFloat(R"([-+]?((0|[1-9][0-9]*)(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)");
const std::regex kLeadingZeroFloat(R"([-+]?0[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?)");
const std::regex kNonFinite(R"([-+]?\.?(inf|Inf|INF|nan|NaN|NAN|infinity|Infinity))");
const std::set<std::string> kYaml11Bools = {"y",   "Y",   "yes",  "Yes",  "YES",   "n",    "N",
                                            "no",  "No",  "NO",   "on",   "On",    "ON",   "off",
                                            "Off", "OFF", "True", "TRUE", "False", "FALSE"};

void expect_scalar(const YAML::Node& n, const std::string& key, const std::string& where,
                   const std::string& expected, const std::string& example) {
  if (n.IsScalar()) return;
  std::string got = describe(n);
  if (n.IsNull()) fail(where, key, "has no value; write " + expected + " (e.g. " + example + ")");
  fail(where, key, "expected " + expected + ", got " + got + " (e.g. " + example + ")");
}

// Quoted or explicitly tagged scalars are strings to YAML; numbers and booleans must be plain.
void expect_plain(const YAML::Node& n, const std::string& key, const std::string& where,
                  const std::string& expected) {
  if (n.Tag() == "?") return;
  if (n.Tag() == "!")
    fail(where, key, "expected " + expected + ", got " + describe(n) + "; remove the quotes");
  fail(
      where, key,
      "expected " + expected + ", got '" + n.Scalar() + "' tagged " + n.Tag() + "; remove the tag");
}

void reject_ambiguous_integer(const std::string& s, const std::string& key,
                              const std::string& where) {
  if (std::regex_match(s, kLeadingZeroInt))
    fail(where, key,
         "'" + s +
             "' is ambiguous: YAML 1.1 reads a leading zero as octal, YAML 1.2 as decimal; "
             "write the number without leading zeros");
  if (std::regex_match(s, kPrefixedInt))
    fail(where, key, "'" + s + "' is not a plain decimal number; write it in decimal");
}

int64_t parse_int(const YAML::Node& n, const std::string& key, const std::string& where,
                  const std::string& example) {
  expect_scalar(n, key, where, "a whole number", example);
  expect_plain(n, key, where, "a whole number");
  const std::string& s = n.Scalar();
  reject_ambiguous_integer(s, key, where);
  if (std::regex_match(s, kDecimalInt)) {
    int64_t v = 0;
    const char* b = s.data() + (s[0] == '+' ? 1 : 0);
    auto r = std::from_chars(b, s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      fail(where, key, "'" + s + "' is out of range for a 64-bit whole number");
    return v;
  }
  if (std::regex_match(s, kDecimalFloat)) {
    double d = std::strtod(s.c_str(), nullptr);
    std::string hint = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15
                           ? "; write " + std::to_string(static_cast<int64_t>(d))
                           : "; write a whole number (e.g. " + example + ")";
    fail(where, key, "expected a whole number, got the float '" + s + "'" + hint);
  }
  fail(where, key, "expected a whole number, got " + describe(n) + " (e.g. " + example + ")");
}

double parse_float(const YAML::Node& n, const std::string& key, const std::string& where,
                   const std::string& example) {
  expect_scalar(n, key, where, "a number", example);
  expect_plain(n, key, where, "a number");
  const std::string& s = n.Scalar();
  if (std::regex_match(s, kPrefixedInt)) reject_ambiguous_integer(s, key, where);
  if (std::regex_match(s, kLeadingZeroFloat))
    reject_ambiguous_integer(s.substr(0, s.find_first_of(".eE")), key, where);
  if (std::regex_match(s, kNonFinite))
    fail(where, key, "'" + s + "' is not a finite number (e.g. " + example + ")");
  if (!std::regex_match(s, kDecimalFloat))
    fail(where, key, "expected a number, got " + describe(n) + " (e.g. " + example + ")");
  double v = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(v)) fail(where, key, "'" + s + "' is out of range for a number");
  return v;
}

bool parse_bool(const YAML::Node& n, const std::string& key, const std::string& where) {
  expect_scalar(n, key, where, "true or false", "true");
  expect_plain(n, key, where, "true or false");
  const std::string& s = n.Scalar();
  if (s == "true") return true;
  if (s == "false") return false;
  if (kYaml11Bools.count(s))
    fail(where, key,
         "'" + s +
             "' is ambiguous: YAML 1.1 reads it as a boolean, YAML 1.2 as a string; write "
             "true or false");
  fail(where, key, "expected true or false, got " + describe(n));
}

std::string parse_string(const YAML::Node& n, const std::string& key, const std::string& where,
                         const std::string& example) {
  expect_scalar(n, key, where, "a string", example);
  return n.Scalar();
}

// Edits (insert, delete, substitute, swap two neighbours) between a and b: "modle" is 1 from
// "model".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// A typo is a few edits away, or a prefix ("warmup" for "warmup_steps").
bool looks_like(const std::string& typed, const std::string& known) {
  size_t allowed = std::min<size_t>(3, std::max<size_t>(1, typed.size() / 3));
  if (edit_distance(typed, known) <= allowed) return true;
  return typed.size() >= 3 && known.rfind(typed, 0) == 0;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

// ---- the field table -----------------------------------------------------------------------

using Ref = std::variant<int64_t*, double*, bool*, std::string*, std::vector<int64_t>*,
                         std::vector<double>*>;

struct Field {
  Field(std::string key_, std::function<Ref(TrainConfig&)> ref_, Range range_ = Range{},
        std::vector<std::string> choices_ = {}, size_t list_size_ = 0, bool allow_empty_ = false)
      : key(std::move(key_)),
        ref(std::move(ref_)),
        range(range_),
        choices(std::move(choices_)),
        list_size(list_size_),
        allow_empty(allow_empty_) {}
  std::string key;  // dotted path
  std::function<Ref(TrainConfig&)> ref;
  Range range;                       // numbers and list elements
  std::vector<std::string> choices;  // enum strings
  size_t list_size = 0;              // fixed list length (0: any)
  bool allow_empty = false;          // strings
};

#define LONGNET_REF(member) [](TrainConfig& c) -> Ref { return &c.member; }

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      {"model.variant", LONGNET_REF(model.variant), {}, {"decoder_only", "encoder_decoder"}},
      {"model.vocab_size", LONGNET_REF(model.vocab_size), at_least(1)},
      {"model.d_model", LONGNET_REF(model.d_model), at_least(1)},
      {"model.num_heads", LONGNET_REF(model.num_heads), at_least(1)},
      {"model.num_layers", LONGNET_REF(model.num_layers), at_least(1)},
      {"model.num_encoder_layers", LONGNET_REF(model.num_encoder_layers), at_least(0)},
      {"model.dim_feedforward", LONGNET_REF(model.dim_feedforward), at_least(1)},
      {"model.segment_lengths", LONGNET_REF(model.segment_lengths), at_least(1)},
      {"model.dilation_rates", LONGNET_REF(model.dilation_rates), at_least(1)},
      {"model.dropout", LONGNET_REF(model.dropout), half_open(0, 1)},
      {"model.activation", LONGNET_REF(model.activation), {}, {"relu", "gelu"}},
      {"model.layer_norm_eps", LONGNET_REF(model.layer_norm_eps), above(0)},
      {"device", LONGNET_REF(device), {}, {"cpu", "cuda"}},
      {"grid.data_parallel", LONGNET_REF(grid.data_parallel), at_least(0)},
      {"grid.sequence_parallel", LONGNET_REF(grid.sequence_parallel), at_least(1)},
      {"data.path", LONGNET_REF(data.path)},
      {"data.source", LONGNET_REF(data.source), {}, {}, 0, /*allow_empty=*/true},
      {"data.seq_len", LONGNET_REF(data.seq_len), at_least(1)},
      {"data.batch_size", LONGNET_REF(data.batch_size), at_least(1)},
      {"optim.lr", LONGNET_REF(optim.lr), above(0)},
      {"optim.betas", LONGNET_REF(optim.betas), half_open(0, 1), {}, 2},
      {"optim.eps", LONGNET_REF(optim.eps), above(0)},
      {"optim.weight_decay", LONGNET_REF(optim.weight_decay), at_least(0)},
      {"optim.warmup_steps", LONGNET_REF(optim.warmup_steps), at_least(0)},
      {"optim.end_lr", LONGNET_REF(optim.end_lr), at_least(0)},
      {"optim.decay_power", LONGNET_REF(optim.decay_power), above(0)},
      {"optim.grad_clip", LONGNET_REF(optim.grad_clip), at_least(0)},
      {"train.steps", LONGNET_REF(train.steps), at_least(1)},
      {"train.grad_accumulation", LONGNET_REF(train.grad_accumulation), at_least(1)},
      {"train.precision", LONGNET_REF(train.precision), {}, {"fp32", "bf16"}},
      {"train.activation_checkpointing", LONGNET_REF(train.activation_checkpointing)},
      {"train.seed", LONGNET_REF(train.seed), at_least(0)},
      {"train.max_bad_steps", LONGNET_REF(train.max_bad_steps), at_least(0)},
      {"train.collective_timeout_s", LONGNET_REF(train.collective_timeout_s), at_least(0)},
      {"eval.interval", LONGNET_REF(eval.interval), at_least(1)},
      {"eval.batches", LONGNET_REF(eval.batches), at_least(1)},
      {"checkpoint.dir", LONGNET_REF(checkpoint.dir)},
      {"checkpoint.interval", LONGNET_REF(checkpoint.interval), at_least(1)},
      {"checkpoint.keep", LONGNET_REF(checkpoint.keep), at_least(1)},
      {"checkpoint.resume", LONGNET_REF(checkpoint.resume)},  // auto | none | a path
      {"log.interval", LONGNET_REF(log.interval), at_least(1)},
      {"log.metrics", LONGNET_REF(log.metrics)},
  };
  return table;
}

#undef LONGNET_REF

const Field* find_field(const std::string& key) {
  for (const auto& f : fields())
    if (f.key == key) return &f;
  return nullptr;
}

// Sections are the dotted prefixes of the fields; "" is the top level.
bool is_section(const std::string& key) {
  if (key.empty()) return true;
  for (const auto& f : fields())
    if (f.key.rfind(key + ".", 0) == 0) return true;
  return false;
}

std::string parent_of(const std::string& key) {
  auto dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}
std::string leaf_of(const std::string& key) {
  return key.substr(key.rfind('.') + 1);
}

// Names directly under `section`, in schema order.
std::vector<std::string> children_of(const std::string& section) {
  std::vector<std::string> out;
  for (const auto& f : fields()) {
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

// The default value's YAML text, used as the example in messages.
std::string value_yaml(const Field& f, const TrainConfig& c);

std::string unknown_key_message(const std::string& key) {
  const std::string section = parent_of(key), leaf = leaf_of(key);
  std::string guess;
  for (const auto& name : children_of(section))
    if (looks_like(leaf, name)) {
      guess = section.empty() ? name : section + "." + name;
      break;
    }
  if (guess.empty())  // the right name in the wrong section ("model.lr" for "optim.lr")
    for (const auto& f : fields())
      if (leaf_of(f.key) == leaf || looks_like(key, f.key)) {
        guess = f.key;
        break;
      }
  std::string msg = "unknown key";
  if (!guess.empty()) msg += "; did you mean '" + guess + "'?";
  const auto known = children_of(section);
  if (!known.empty())
    msg += " (" + (section.empty() ? std::string("the top level") : section) +
           " takes: " + join(known, ", ") + ")";
  return msg;
}

// ---- parsing one value into the config -------------------------------------------------------

std::string value_yaml(const Field& f, const TrainConfig& c) {
  Ref r = f.ref(const_cast<TrainConfig&>(c));  // read only
  struct Visitor {
    std::string operator()(int64_t* v) const { return std::to_string(*v); }
    std::string operator()(double* v) const { return format_double_yaml(*v); }
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
      for (auto x : *v) items.push_back(format_double_yaml(x));
      return "[" + join(items, ", ") + "]";
    }
  };
  std::string text = std::visit(Visitor{}, r);
  // Enum values are plain words; keep them unquoted like the schema.
  if (!f.choices.empty()) text = *std::get<std::string*>(r);
  return text;
}

void check_range(const Field& f, double v, const std::string& key, const std::string& shown,
                 const std::string& where) {
  if (!f.range.contains(v))
    fail(where, key, shown + " is out of range; it must be " + f.range.text());
}

void set_field(TrainConfig& c, const Field& f, const YAML::Node& n, const YAML::Mark& key_mark,
               const Source& src) {
  static const TrainConfig defaults;
  const std::string example = value_yaml(f, defaults);
  const std::string& key = f.key;
  // A null value has no useful mark of its own (it points past the key's line).
  const std::string where = src.at(n.IsNull() ? key_mark : n.Mark());
  Ref r = f.ref(c);
  if (auto p = std::get_if<int64_t*>(&r)) {
    int64_t v = parse_int(n, key, where, example);
    check_range(f, static_cast<double>(v), key, std::to_string(v), where);
    **p = v;
  } else if (auto p = std::get_if<double*>(&r)) {
    double v = parse_float(n, key, where, example);
    check_range(f, v, key, n.Scalar(), where);
    **p = v;
  } else if (auto p = std::get_if<bool*>(&r)) {
    **p = parse_bool(n, key, where);
  } else if (auto p = std::get_if<std::string*>(&r)) {
    std::string v = parse_string(n, key, where, example);
    if (!f.choices.empty() && std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end()) {
      std::string hint;
      for (const auto& ch : f.choices)
        if (looks_like(v, ch)) hint = " (did you mean " + ch + "?)";
      fail(where, key, "'" + v + "' is not one of " + join(f.choices, ", ") + hint);
    }
    if (v.empty() && !f.allow_empty) fail(where, key, "must not be empty (e.g. " + example + ")");
    **p = v;
  } else {
    // Lists: a scalar where a list belongs is the usual slip ("segment_lengths: 2048").
    if (n.IsScalar())
      fail(where, key,
           "expected a list such as " + example + ", got the single value '" + n.Scalar() +
               "'; write [" + n.Scalar() + "]");
    if (!n.IsSequence())
      fail(where, key, "expected a list such as " + example + ", got " + describe(n));
    if (f.list_size && n.size() != f.list_size)
      fail(where, key,
           "expected " + std::to_string(f.list_size) + " values (e.g. " + example + "), got " +
               std::to_string(n.size()));
    auto item_where = [&](size_t i) { return src.at(n[i].Mark()); };
    if (auto p = std::get_if<std::vector<int64_t>*>(&r)) {
      std::vector<int64_t> out;
      for (size_t i = 0; i < n.size(); ++i) {
        std::string k = key + "[" + std::to_string(i) + "]";
        int64_t v = parse_int(n[i], k, item_where(i), example);
        check_range(f, static_cast<double>(v), k, std::to_string(v), item_where(i));
        out.push_back(v);
      }
      **p = out;
    } else {
      auto q = std::get<std::vector<double>*>(r);
      std::vector<double> out;
      for (size_t i = 0; i < n.size(); ++i) {
        std::string k = key + "[" + std::to_string(i) + "]";
        double v = parse_float(n[i], k, item_where(i), example);
        check_range(f, v, k, n[i].Scalar(), item_where(i));
        out.push_back(v);
      }
      *q = out;
    }
  }
  c.origin[key] = where;
}

// Applies a mapping at `section` ("" for the whole document).
void apply_map(TrainConfig& c, const YAML::Node& map, const std::string& section,
               const Source& src) {
  std::map<std::string, std::string> seen;  // key -> where first seen
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: the iterator hands out a temporary pair (Node copies share the data).
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    const std::string where = src.at(k.Mark());
    if (!k.IsScalar())
      fail(where, section.empty() ? "(top level)" : section,
           "a key must be a plain name, got " + describe(k));
    const std::string key = section.empty() ? k.Scalar() : section + "." + k.Scalar();
    auto [first, inserted] = seen.emplace(k.Scalar(), where);
    if (!inserted)
      fail(where, key, "duplicate key (first given at " + first->second + "); keep only one");
    if (is_section(key)) {
      if (v.IsNull()) continue;  // "model:" with nothing under it keeps the defaults
      if (!v.IsMap())
        fail(src.at(v.Mark()), key,
             "is a section and needs keys under it (" + join(children_of(key), ", ") + "), got " +
                 describe(v));
      apply_map(c, v, key, src);
    } else if (const Field* f = find_field(key)) {
      set_field(c, *f, v, k.Mark(), src);
    } else {
      fail(where, key, unknown_key_message(key));
    }
  }
}

void apply_override(TrainConfig& c, const std::string& text) {
  Source src;
  src.override = text;
  const std::string where = src.at(YAML::Mark::null_mark());
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument(where + ": expected dotted.key=value (e.g. optim.lr=3e-4)");
  std::string key = text.substr(0, eq);
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail(where, key, "the value is not valid YAML (" + e.msg + ")");
  }
  if (!key.empty() && is_section(key)) {
    if (!value.IsMap())
      fail(where, key,
           "is a section; override one of its keys (" + join(children_of(key), ", ") + "), e.g. " +
               key + "." + children_of(key)[0] + "=...");
    apply_map(c, value, key, src);
  } else if (const Field* f = find_field(key)) {
    set_field(c, *f, value, YAML::Mark::null_mark(), src);
  } else {
    fail(where, key, unknown_key_message(key));
  }
}

// ---- cross-field checks --------------------------------------------------------------------

// "file.yaml:4" or "command-line override '...'", or "default" for a key not set.
std::string origin_of(const TrainConfig& c, const std::string& key) {
  auto it = c.origin.find(key);
  return it == c.origin.end() ? "default" : it->second;
}

// Fails with "<where key was set>: <key>: msg".
[[noreturn]] void fail_rule(const TrainConfig& c, const std::string& key, const std::string& msg) {
  auto it = c.origin.find(key);
  throw std::invalid_argument((it == c.origin.end() ? "config (default value)" : it->second) +
                              ": " + key + ": " + msg);
}

// "model.d_model = 100 (file.yaml:4)" for the other keys a rule involves.
std::string mention(const TrainConfig& c, const std::string& key, const std::string& value) {
  return key + " = " + value + " (" + origin_of(c, key) + ")";
}
std::string mention(const TrainConfig& c, const std::string& key, int64_t value) {
  return mention(c, key, std::to_string(value));
}

// Ascending, for suggestions in messages: every divisor when n < 2^40, else those with a
// cofactor below 2^20 (the search is O(min(sqrt(n), 2^20)); a config may hold any int64).
std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> low, high;
  for (int64_t d = 1; d * d <= n && d <= (int64_t(1) << 20); ++d)
    if (n % d == 0) {
      low.push_back(d);
      if (d != n / d) high.push_back(n / d);
    }
  low.insert(low.end(), high.rbegin(), high.rend());
  return low;
}

std::string list_text(const std::vector<int64_t>& v, size_t max_items = 8) {
  std::vector<std::string> items;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) items.push_back(std::to_string(v[i]));
  if (v.size() > max_items) items.push_back("...");
  return join(items, ", ");
}

void check_model(const TrainConfig& c) {
  const auto& m = c.model;
  // Widths that work with this many heads: multiples of 8 * num_heads (head dim a multiple of 8).
  const int64_t step = 8 * m.num_heads;
  const int64_t lo = m.d_model / step * step, hi = lo + step;
  const std::string widths = "d_model " + (lo > 0 ? std::to_string(lo) + " or " : std::string()) +
                             std::to_string(hi) +
                             " (multiples of 8 * num_heads = " + std::to_string(step) + ")";
  if (m.d_model % m.num_heads != 0) {
    std::vector<int64_t> heads;
    for (int64_t h : divisors(m.d_model))
      if ((m.d_model / h) % 8 == 0) heads.push_back(h);
    fail_rule(c, "model.num_heads",
              std::to_string(m.num_heads) + " does not divide " +
                  mention(c, "model.d_model", m.d_model) + "; with " + std::to_string(m.num_heads) +
                  " heads use " + widths +
                  (heads.empty() ? ""
                                 : ", or with d_model " + std::to_string(m.d_model) +
                                       " use num_heads in {" + list_text(heads) + "}"));
  }
  const int64_t head_dim = m.d_model / m.num_heads;
  if (head_dim % 8 != 0)
    fail_rule(c, "model.num_heads",
              "the head dim d_model / num_heads = " + std::to_string(m.d_model) + " / " +
                  std::to_string(m.num_heads) + " = " + std::to_string(head_dim) +
                  " is not a multiple of 8 (the attention kernels need it; " +
                  mention(c, "model.d_model", m.d_model) + "); with " +
                  std::to_string(m.num_heads) + " heads use " + widths);
  if (m.segment_lengths.empty())
    fail_rule(c, "model.segment_lengths",
              "is empty; give at least one segment length, e.g. [2048]");
  if (m.segment_lengths.size() != m.dilation_rates.size())
    fail_rule(c, "model.dilation_rates",
              "has " + std::to_string(m.dilation_rates.size()) + " values [" +
                  list_text(m.dilation_rates) + "] but model.segment_lengths has " +
                  std::to_string(m.segment_lengths.size()) + " [" + list_text(m.segment_lengths) +
                  "] (" + origin_of(c, "model.segment_lengths") +
                  "); give one dilation rate per segment length");
  for (size_t i = 0; i < m.segment_lengths.size(); ++i) {
    if (m.segment_lengths[i] < 1)
      fail_rule(c, "model.segment_lengths", "value " + std::to_string(i) + " must be >= 1");
    if (m.dilation_rates[i] < 1)
      fail_rule(c, "model.dilation_rates", "value " + std::to_string(i) + " must be >= 1");
  }
  if (m.variant == "encoder_decoder" && m.num_encoder_layers < 1)
    fail_rule(c, "model.num_encoder_layers",
              "is 0 but model.variant is encoder_decoder (" + origin_of(c, "model.variant") +
                  "); set num_encoder_layers >= 1 (e.g. 12) or use variant decoder_only");
  if (m.variant == "decoder_only" && m.num_encoder_layers != 0)
    fail_rule(c, "model.num_encoder_layers",
              "is " + std::to_string(m.num_encoder_layers) + " but model.variant is " +
                  "decoder_only (" + origin_of(c, "model.variant") + "); set it to 0 or use " +
                  "variant encoder_decoder");
  if (m.vocab_size < 256)
    fail_rule(c, "model.vocab_size",
              std::to_string(m.vocab_size) +
                  " is smaller than the 256 byte values the token "
                  "files hold; use 256");
}

void check_sequence(const TrainConfig& c) {
  const auto& m = c.model;
  const int64_t n = c.data.seq_len, sp = c.grid.sequence_parallel;
  if (n % sp != 0) {
    int64_t lo = n / sp * sp, hi = lo + sp;
    fail_rule(c, "data.seq_len",
              std::to_string(n) + " is not divisible by " +
                  mention(c, "grid.sequence_parallel", sp) + "; use " +
                  (lo > 0 ? std::to_string(lo) + " or " : "") + std::to_string(hi));
  }
  const int64_t L = n / sp;
  for (size_t i = 0; i < m.segment_lengths.size(); ++i) {
    const int64_t w = std::min(m.segment_lengths[i], n);
    if (L % w == 0 || w % L == 0) continue;
    std::vector<int64_t> ok;
    for (int64_t d : divisors(L))
      if (d > 1) ok.push_back(d);
    std::string fits = ok.empty() ? ""
                                  : "a divisor of " + std::to_string(L) + " (" +
                                        list_text(std::vector<int64_t>(
                                            ok.end() - std::min<size_t>(ok.size(), 4), ok.end())) +
                                        ") or ";
    fail_rule(
        c, "model.segment_lengths",
        "segment " + std::to_string(i) + " = " + std::to_string(m.segment_lengths[i]) +
            (w != m.segment_lengths[i] ? " (clipped to data.seq_len: " + std::to_string(w) + ")"
                                       : "") +
            " neither divides nor is a multiple of the per-rank length L = data.seq_len / "
            "grid.sequence_parallel = " +
            std::to_string(n) + " / " + std::to_string(sp) + " = " + std::to_string(L) + "; use " +
            fits + "a multiple of " + std::to_string(L));
  }
}

void check_grid(const TrainConfig& c, int world) {
  const int64_t sp = c.grid.sequence_parallel, dp = c.grid.data_parallel;
  if (world % sp != 0)
    fail_rule(c, "grid.sequence_parallel",
              std::to_string(sp) + " does not divide the world size " + std::to_string(world) +
                  " (ranks in this job); use one of {" + list_text(divisors(world)) +
                  "} or launch a multiple of " + std::to_string(sp) + " ranks");
  if (dp != 0 && dp * sp != world)
    fail_rule(c, "grid.data_parallel",
              "data_parallel x sequence_parallel = " + std::to_string(dp) + " x " +
                  std::to_string(sp) + " = " + std::to_string(dp * sp) + " but the job has " +
                  std::to_string(world) + " ranks; set grid.data_parallel: 0 (inferred as " +
                  std::to_string(world / sp) + ") or launch with mpirun -np " +
                  std::to_string(dp * sp));
}

void check_training(const TrainConfig& c) {
  if (c.train.precision == "bf16" && c.device != "cuda")
    fail_rule(c, "train.precision",
              "bf16 needs device: cuda but " + mention(c, "device", c.device) +
                  "; use precision fp32 on the CPU");
  if (c.optim.warmup_steps >= c.train.steps)
    fail_rule(c, "optim.warmup_steps",
              std::to_string(c.optim.warmup_steps) + " is not smaller than " +
                  mention(c, "train.steps", c.train.steps) + "; use fewer warm-up steps (e.g. " +
                  std::to_string(c.train.steps / 10) + ") or more steps");
  if (c.optim.end_lr > c.optim.lr)
    fail_rule(c, "optim.end_lr",
              format_double(c.optim.end_lr) + " is larger than " +
                  mention(c, "optim.lr", format_double(c.optim.lr)) +
                  "; the schedule decays from lr to end_lr, so use end_lr <= lr (e.g. 0)");
  if (c.checkpoint.resume.empty())
    fail_rule(c, "checkpoint.resume", "is empty; use auto, none or a checkpoint path");
}

}  // namespace

bool operator==(const TrainConfig& a, const TrainConfig& b) {
  for (const auto& f : fields())
    if (value_yaml(f, a) != value_yaml(f, b)) return false;
  return true;
}

namespace {

// A line whose first non-blank character is ',' outside any [ ] or { } list: yaml-cpp (0.8)
// loops on several forms of it ('- a\n,b', 'a\n# c\n,b'), and in a config it never means
// anything. Tracks flow brackets and quoted scalars (which start a node: at a line start or after
// one of : - [ { , ?) and skips comments.
void reject_line_start_commas(const std::string& text, const std::string& name) {
  int depth = 0;
  char quote = 0, prev = '\n';  // prev: the last non-blank character of this line
  size_t line_no = 1;
  auto node_start = [&prev] { return std::strchr("\n:-[{,?", prev) != nullptr; };
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '\n') {
      ++line_no;
      prev = '\n';
      continue;
    }
    if (quote != 0) {
      if (quote == '"' && ch == '\\')
        ++i;
      else if (quote == '\'' && ch == '\'' && i + 1 < text.size() && text[i + 1] == '\'')
        ++i;
      else if (ch == quote)
        quote = 0;
      prev = ch;
      continue;
    }
    if (ch == ' ' || ch == '\t' || ch == '\r') continue;
    if (ch == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(text[i - 1])))) {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (prev == '\n' && depth == 0) {
      // The line's first token, after node properties ('!tag', '&anchor'), if any.
      size_t j = i;
      while (j < text.size() && (text[j] == '!' || text[j] == '&')) {
        j = std::min(text.find_first_of(" \t\r\n,[]{}", j), text.size());
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
      }
      if (j < text.size() && text[j] == ',')
        throw std::invalid_argument(name + ":" + std::to_string(line_no) +
                                    ": YAML syntax error: a line starting with ',' outside any "
                                    "[ ] or { } list (fix the YAML at that line)");
    }
    // prev becomes the character's role: itself where it is an indicator, 'a' where it is part
    // of a plain scalar (outside brackets ':', '-', '?' only count before a blank, and '[', '{',
    // quotes only where a node starts: in 'k: /["' the '[' and '"' are plain).
    const char next = i + 1 < text.size() ? text[i + 1] : '\n';
    const bool blank_next = next == ' ' || next == '\t' || next == '\r' || next == '\n';
    char role = ch;
    if ((ch == '"' || ch == '\'') && node_start())
      quote = ch;
    else if ((ch == '[' || ch == '{') && (depth > 0 || node_start()))
      ++depth;
    else if ((ch == ']' || ch == '}') && depth > 0)
      --depth;
    else if (depth == 0 && (std::strchr("\"'[{,", ch) != nullptr ||
                            (std::strchr(":-?", ch) != nullptr && !blank_next)))
      role = 'a';
    prev = role;
  }
}

// yaml-cpp (0.7, 0.8) never returns, eating memory, when a document's first token is a ','
// (possibly after a byte-order mark, a tag or an anchor) or a ',' follows a document's root flow
// collection or quoted scalar ('[a] ,b', '"x" ,b'), and misreads control characters (all found by
// tests/fuzz). Reject those before it parses: control characters anywhere; lines starting with
// ',' outside brackets; and, skipping blank, comment and directive lines ('%' first on a line,
// which yaml-cpp reads as a directive even inside a document and then expects a new one) and
// document markers, any document that does not start with a plain key.
void reject_parser_traps(const std::string& text, const std::string& name) {
  size_t line_no = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch == '\n') ++line_no;
    if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f)
      throw std::invalid_argument(name + ":" + std::to_string(line_no) + ": control character " +
                                  std::to_string(int(ch)) + " in the file; a config is YAML text");
  }
  reject_line_start_commas(text, name);
  bool at_start = true;
  size_t pos = 0;
  line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string rest = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (line_no == 1 && rest.rfind("\xEF\xBB\xBF", 0) == 0) rest = rest.substr(3);  // BOM
    const bool indented = !rest.empty() && (rest[0] == ' ' || rest[0] == '\t');
    auto trim = [&rest](size_t from) {
      size_t j = rest.find_first_not_of(" \t\r", from);
      rest = j == std::string::npos ? "" : rest.substr(j);
    };
    trim(0);
    if (rest.empty() || rest[0] == '#') continue;
    if (rest[0] == '%') {  // yaml-cpp takes it for a directive even inside a document
      at_start = true;
      continue;
    }
    for (const char* marker : {"---", "..."})
      if (rest.rfind(marker, 0) == 0 && (rest.size() == 3 || rest[3] == ' ' || rest[3] == '\t')) {
        at_start = true;
        trim(3);
      }
    // Node properties (tags, anchors) before a document's first token.
    while (at_start && !rest.empty() && (rest[0] == '!' || rest[0] == '&')) {
      size_t j = rest.find_first_of(" \t,[]{}");
      if (j == std::string::npos) {
        rest.clear();
        break;
      }
      trim(j);
    }
    if (rest.empty() || rest[0] == '#') continue;
    // A config is a block mapping of sections, so a document must start with a plain key.
    // Anything else there ('[...]', '{...}', a quoted scalar, '- ', ',', '? ', ...) is refused:
    // yaml-cpp loops on a ',' after such a root node ('[a] ,b', '"x" ,b', '[] !t ,b').
    const bool block_entry = rest[0] == '-' && (rest.size() == 1 || rest[1] == ' ' ||
                                                rest[1] == '\t' || rest[1] == '\r');
    // ... and that key's ':' (followed by a blank or the end of the line) is on this line.
    auto has_key_colon = [](std::string line) {
      const size_t comment = line.find(" #");
      if (comment != std::string::npos) line.resize(comment);
      for (size_t c = line.find(':'); c != std::string::npos; c = line.find(':', c + 1))
        if (c + 1 == line.size() || std::strchr(" \t\r", line[c + 1]) != nullptr) return true;
      return false;
    };
    // ... in the first column (yaml-cpp loops on '  r:\n"x",', where the line after an
    // indented root mapping dedents past it).
    if (at_start && (block_entry || std::strchr("[]{},?:|>'\"*@`", rest[0]) != nullptr ||
                     !has_key_colon(rest) || indented))
      throw std::invalid_argument(name + ":" + std::to_string(line_no) +
                                  ": the config must be a mapping of sections (model:, data:, "
                                  "...), each key plain at the start of its line; this document "
                                  "starts with '" +
                                  (indented ? std::string("an indented key") : rest.substr(0, 1)) +
                                  "' (fix the YAML at that line)");
    at_start = false;
  }
}

}  // namespace

TrainConfig config_parse(const std::string& text, const std::string& name,
                         const std::vector<std::string>& overrides) {
  TrainConfig c;
  reject_parser_traps(text, name);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(name + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) +
                                ": YAML syntax error: " + e.msg + " (fix the YAML at that line)");
  }
  if (docs.size() > 1)
    throw std::invalid_argument(name + ":" + std::to_string(docs[1].Mark().line + 1) +
                                ": a second YAML document ('---'); a config is one document");
  Source src;
  src.file = name;
  if (!docs.empty() && !docs[0].IsNull()) {
    if (!docs[0].IsMap())
      throw std::invalid_argument(src.at(docs[0].Mark()) +
                                  ": the config must be a mapping of sections (" +
                                  join(children_of(""), ", ") + "), got " + describe(docs[0]));
    apply_map(c, docs[0], "", src);
  }
  for (const auto& o : overrides) apply_override(c, o);
  return c;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LONGNET_HAS_ASAN 1
#endif
#endif
#ifndef LONGNET_HAS_ASAN
#define LONGNET_HAS_ASAN 0
#endif

namespace {

// yaml-cpp can loop forever on malformed input; the known traps are caught above, and this
// bounds the unknown ones: the config is parsed once in a child process with a time and memory
// limit before this process parses it. Returns normally when the child finished.
void config_parse_probe(const std::string& text, const std::string& name,
                        const std::vector<std::string>& overrides) {
  const pid_t pid = ::fork();
  if (pid < 0) return;  // no child: parse in-process only
  if (pid == 0) {
#if !defined(__SANITIZE_ADDRESS__) && !LONGNET_HAS_ASAN
    // 2 GiB beyond the address space already mapped (with CUDA libraries loaded that is
    // gigabytes). (AddressSanitizer reserves terabytes of address space; under it only the
    // time limit.)
    size_t mapped_pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%zu", &mapped_pages) != 1) mapped_pages = 0;
      std::fclose(f);
    }
    if (mapped_pages > 0) {  // (unknown: only the time limit)
      const size_t limit = mapped_pages * size_t(::sysconf(_SC_PAGESIZE)) + (size_t(2) << 30);
      struct rlimit mem = {limit, limit};
      ::setrlimit(RLIMIT_AS, &mem);
    }
#endif
    ::signal(SIGALRM, SIG_DFL);  // a fuzzer's own SIGALRM handler must not catch ours
    ::alarm(10);
    int code = 0;
    // Testing aid: the parser of an unknown malformed document that never returns.
    if (std::getenv("LONGNET_TEST_PARSER_HANG") != nullptr)
      for (;;) ::pause();
    try {
      config_parse(text, name, overrides);
    } catch (const std::invalid_argument&) {
      // An ordinary config error: the parent reports it.
    } catch (...) {
      code = 3;  // out of memory, or anything else unexpected
    }
    ::_exit(code);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0))
    throw std::invalid_argument(
        name +
        ": the YAML parser did not finish on this config (it ran past 10 s or 2 GiB); "
        "the YAML is malformed, e.g. a stray ',' after a value or an unclosed [ or {; fix it");
}

}  // namespace

TrainConfig config_parse_guarded(const std::string& text, const std::string& name,
                                 const std::vector<std::string>& overrides) {
  config_parse_probe(text, name, overrides);
  return config_parse(text, name, overrides);
}

TrainConfig config_load(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return config_parse_guarded("", "defaults", overrides);
  // stat, not std::filesystem: libtorch.so exports std::filesystem symbols of another build
  // that the dynamic linker may bind to (they crash).
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw std::invalid_argument("config file '" + path + "' does not exist");
  if (S_ISDIR(st.st_mode))
    throw std::invalid_argument("config file '" + path + "' is a directory, not a YAML file");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in)
    throw std::invalid_argument("config file '" + path +
                                "' cannot be read: " + std::strerror(errno));
  return config_parse_guarded(text.str(), path, overrides);
}

void config_check(const TrainConfig& config, int world_size) {
  if (world_size < 1) throw std::logic_error("config_check: world_size must be >= 1");
  check_model(config);
  check_sequence(config);
  check_grid(config, world_size);
  check_training(config);
}

int64_t config_data_parallel(const TrainConfig& config, int world_size) {
  return config.grid.data_parallel ? config.grid.data_parallel
                                   : world_size / config.grid.sequence_parallel;
}

std::string config_to_yaml(const TrainConfig& config) {
  std::string out, section;
  for (const auto& f : fields()) {
    std::string sec = parent_of(f.key);
    if (sec != section) {
      if (!sec.empty()) out += sec + ":\n";
      section = sec;
    }
    out += (sec.empty() ? "" : "  ") + leaf_of(f.key) + ": " + value_yaml(f, config) + "\n";
  }
  return out;
}

}  // namespace longnet
