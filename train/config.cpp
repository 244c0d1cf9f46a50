// Loading configs (see config.h): YAML and overrides onto the key table (config_schema.h), each
// scalar through the strict parser (yaml_strict.h) and checked against its field's spec.
#include "longnet/train/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>
#include <stdexcept>

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/train/config_schema.h"
#include "longnet/train/fault_injection.h"
#include "longnet/train/yaml_strict.h"

namespace longnet {
namespace {

std::string parent_of(const std::string& key) {
  auto dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}
std::string leaf_of(const std::string& key) {
  return key.substr(key.rfind('.') + 1);
}

void check_range(const OptionSpec& spec, double v, const std::string& key, const std::string& shown,
                 const std::string& where) {
  if (!spec.contains(v))
    yaml_fail(where, key, shown + " is out of range; it must be " + spec.range_text());
}
void check_whole(const OptionSpec& spec, int64_t v, const std::string& key,
                 const std::string& where) {
  if (!spec.contains_whole(v))
    yaml_fail(where, key, std::to_string(v) + " is out of range; it must be " + spec.range_text());
}

// '~' and '$NAME' are a shell's to expand; in a config they would name a folder called '~'
// (or '$HOME') under the working directory, which a later `rm -rf ~` meant for it would miss.
void path_unexpanded_check(const std::string& value, const std::string& key,
                           const std::string& where) {
  if (value == "auto" || value == "none") return;  // checkpoint.resume's modes
  // data.tokenizer is KIND:PATH
  const size_t colon = key == "data.tokenizer" ? value.find(':') : std::string::npos;
  const std::string path = colon == std::string::npos ? value : value.substr(colon + 1);
  std::string what;
  if (!path.empty() && path[0] == '~') what = "starts with '~'";
  for (size_t i = 0; what.empty() && i + 1 < path.size(); ++i)
    if (path[i] == '$' && (std::isalpha(static_cast<unsigned char>(path[i + 1])) ||
                           path[i + 1] == '_' || path[i + 1] == '{'))
      what = "holds '" + path.substr(i, std::min<size_t>(path.find_first_of("/", i) - i, 32)) + "'";
  if (!what.empty())
    yaml_fail(where, key,
              "the path '" + value + "' " + what +
                  ", which a shell expands but a config does not (longnet would take it "
                  "literally: a folder named so); write the path out, e.g. /home/me/runs/x, or "
                  "give it on the command line unquoted (key=$HOME/runs/x)");
}

// A tag on a mapping or list (!!set, !foo) would be dropped unread, as scalars' are refused.
void collection_untagged(const YAML::Node& n, const std::string& key, const YamlSource& src) {
  const std::string tag = n.Tag();
  if (!tag.empty() && tag != "?" && tag != "!")
    yaml_fail(src.at(n.Mark()), key, "is tagged " + tag + "; remove the tag");
}

void set_field(TrainConfig& c, const ConfigField& f, const YAML::Node& n,
               const YAML::Mark& key_mark, const YamlSource& src) {
  static const TrainConfig defaults;
  const std::string example = config_value_yaml(f, defaults);
  const std::string& key = f.key;
  // A null value has no useful mark of its own (it points past the key's line).
  const std::string where = src.at(n.IsNull() ? key_mark : n.Mark());
  ConfigRef r = config_ref(c, f);
  if (auto p = std::get_if<int64_t*>(&r)) {
    int64_t v = yaml_int(n, key, where, example);
    check_whole(f.spec, v, key, where);
    **p = v;
  } else if (auto p = std::get_if<double*>(&r)) {
    double v = yaml_float(n, key, where, example);
    check_range(f.spec, v, key, n.Scalar(), where);
    **p = v;
  } else if (auto p = std::get_if<bool*>(&r)) {
    **p = yaml_bool(n, key, where);
  } else if (auto p = std::get_if<std::string*>(&r)) {
    std::string v = yaml_string(n, key, where, example);
    if (!f.spec.choices.empty() &&
        std::find(f.spec.choices.begin(), f.spec.choices.end(), v) == f.spec.choices.end()) {
      std::string hint;
      for (const auto& ch : f.spec.choices)
        if (looks_like(v, ch)) hint = " (did you mean " + ch + "?)";
      yaml_fail(where, key, "'" + v + "' is not one of " + join(f.spec.choices, ", ") + hint);
    }
    if (v.empty() && !f.spec.allow_empty)
      yaml_fail(where, key, "must not be empty (e.g. " + example + ")");
    **p = v;
  } else {
    // Lists: a scalar where a list belongs is the usual slip ("segment_lengths: 2048").
    if (n.IsScalar())
      yaml_fail(where, key,
                "expected a list such as " + example + ", got the single value '" + n.Scalar() +
                    "'; write [" + n.Scalar() + "]");
    if (!n.IsSequence())
      yaml_fail(where, key, "expected a list such as " + example + ", got " + yaml_describe(n));
    collection_untagged(n, key, src);
    if (f.spec.list_size && n.size() != f.spec.list_size)
      yaml_fail(where, key,
                "expected " + std::to_string(f.spec.list_size) + " values (e.g. " + example +
                    "), got " + std::to_string(n.size()));
    auto item_where = [&](size_t i) { return src.at(n[i].Mark()); };
    if (auto p = std::get_if<std::vector<int64_t>*>(&r)) {
      std::vector<int64_t> out;
      for (size_t i = 0; i < n.size(); ++i) {
        std::string k = key + "[" + std::to_string(i) + "]";
        int64_t v = yaml_int(n[i], k, item_where(i), example);
        check_whole(f.spec, v, k, item_where(i));
        out.push_back(v);
      }
      **p = out;
    } else {
      auto q = std::get<std::vector<double>*>(r);
      std::vector<double> out;
      for (size_t i = 0; i < n.size(); ++i) {
        std::string k = key + "[" + std::to_string(i) + "]";
        double v = yaml_float(n[i], k, item_where(i), example);
        check_range(f.spec, v, k, n[i].Scalar(), item_where(i));
        out.push_back(v);
      }
      *q = out;
    }
  }
  c.origin[key] = where;
}

// Applies a mapping at `section` ("" for the whole document).
void apply_map(TrainConfig& c, const YAML::Node& map, const std::string& section,
               const YamlSource& src) {
  std::map<std::string, std::string> seen;  // key -> where first seen
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: the iterator hands out a temporary pair (Node copies share the data).
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    const std::string where = src.at(k.Mark());
    if (!k.IsScalar())
      yaml_fail(where, section.empty() ? "(top level)" : section,
                "a key must be a plain name, got " + yaml_describe(k));
    const std::string key = section.empty() ? k.Scalar() : section + "." + k.Scalar();
    auto [first, inserted] = seen.emplace(k.Scalar(), where);
    if (!inserted)
      yaml_fail(where, key, "duplicate key (first given at " + first->second + "); keep only one");
    if (config_is_section(key)) {
      if (v.IsNull()) continue;  // "model:" with nothing under it keeps the defaults
      if (!v.IsMap())
        yaml_fail(src.at(v.Mark()), key,
                  "is a section and needs keys under it (" + join(config_children(key), ", ") +
                      "), got " + yaml_describe(v));
      collection_untagged(v, key, src);
      apply_map(c, v, key, src);
    } else if (const ConfigField* f = config_field_find(key)) {
      set_field(c, *f, v, k.Mark(), src);
    } else {
      yaml_fail(where, key, config_unknown_key_message(key));
    }
  }
}

void apply_override(TrainConfig& c, const std::string& text) {
  YamlSource src;
  src.override = text;
  const std::string where = src.at(YAML::Mark::null_mark());
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument(where + ": expected dotted.key=value (e.g. optim.lr=3e-4)");
  std::string key = text.substr(0, eq);
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
  const std::string value_text = text.substr(eq + 1);
  if (value_text.find_first_not_of(" \t") == std::string::npos)
    yaml_fail(where, key,
              "has no value; give one after '=' (an empty string is " + key +
                  "='\"\"': YAML's quotes inside the shell's)");
  // One line: yaml-cpp would read only the first document ('5\n---\n9') and drop the rest.
  if (value_text.find_first_of("\r\n") != std::string::npos)
    yaml_fail(where, key, "the value spans several lines; an override is one line (key=value)");
  // Other control characters: refused as in a config file (a path with one is a typo).
  for (const unsigned char ch : text)
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      yaml_fail(where, key,
                "control character " + std::to_string(int(ch)) +
                    " in the override; an override is YAML text (key=value)");
  // One pass over the value as YAML reads it (a quote opens a quoted scalar only where a value
  // starts: the value's first non-blank, or after '[', '{', ',' or ':' in a flow collection;
  // elsewhere it is a plain character), for what YAML would drop silently:
  // - a comment: '#' at the start or after a blank ('checkpoint.dir=runs/exp #2' names runs/exp,
  //   another run's directory; "runs/O'Brien #2" is runs/O'Brien);
  // - anything after a bracketed or quoted value (yaml-cpp reads only the leading list of
  //   '[1, 2] ,8', and only x of '"x" y').
  const size_t first = value_text.find_first_not_of(" \t");
  const bool bracketed =
      first != std::string::npos && (value_text[first] == '[' || value_text[first] == '{');
  char quote = 0;
  char before = '[';  // the last non-blank character outside quotes ('[': the value's start)
  int depth = 0;
  bool closed = false;        // the bracketed value, or the quoted one, has closed
  bool whole_quoted = false;  // the value is one quoted scalar ('"x" y' would be read as x)
  for (size_t i = 0; i < value_text.size(); ++i) {
    const char ch = value_text[i];
    if (quote) {
      if (quote == '"' && ch == '\\') {
        ++i;  // an escaped character
      } else if (quote == '\'' && ch == '\'' && i + 1 < value_text.size() &&
                 value_text[i + 1] == '\'') {
        ++i;  // '' in single quotes: one quote
      } else if (ch == quote) {
        quote = 0;
        if (whole_quoted) closed = true;
      }
    } else if ((ch == '"' || ch == '\'') &&
               (before == '[' || before == '{' || before == ',' || before == ':')) {
      quote = ch;
      whole_quoted = i == first;
    } else if (ch == '#' && (i == 0 || value_text[i - 1] == ' ' || value_text[i - 1] == '\t')) {
      const bool single = value_text.find('\'') == std::string::npos;
      const std::string arg =
          key + "=" + (single ? "'" + value_text + "'" : "\"" + value_text + "\"");
      // The argument as one shell word: in double quotes when nothing in it is special there,
      // else in single quotes with each ' written '\''.
      std::string shell;
      if (arg.find_first_of("\"$`\\!") == std::string::npos) {
        shell = "\"" + arg + "\"";
      } else {
        shell = "'";
        for (char c : arg) shell += c == '\'' ? std::string("'\\''") : std::string(1, c);
        shell += "'";
      }
      yaml_fail(where, key,
                "'" + value_text.substr(i) +
                    "' would be read as a YAML comment and dropped; an override takes no "
                    "comment. To keep a '#' in the value, quote it: " +
                    arg + " (in shell quotes: " + shell + ")");
    } else if (closed && ch != ' ' && ch != '\t') {
      yaml_fail(where, key,
                "'" + value_text.substr(i) + "' follows the " +
                    (whole_quoted ? "quoted value; give one value (quote all of it, e.g. " + key +
                                        "='\"a b\"')"
                                  : std::string("bracketed value; give one value")));
    } else if (bracketed && (ch == '[' || ch == '{')) {
      if (++depth > kMaxFlowDepth)
        yaml_fail(where, key,
                  "lists or mappings nested more than " + std::to_string(kMaxFlowDepth) +
                      " deep; a value needs a few levels");
    } else if (bracketed && (ch == ']' || ch == '}') && --depth == 0) {
      closed = true;
    }
    if (ch != ' ' && ch != '\t') before = ch;
  }
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    yaml_fail(where, key, "the value is not valid YAML (" + e.msg + ")");
  }
  if (!key.empty() && config_is_section(key)) {
    if (!value.IsMap())
      yaml_fail(where, key,
                "is a section; override one of its keys (" + join(config_children(key), ", ") +
                    "), e.g. " + key + "." + config_children(key)[0] + "=...");
    apply_map(c, value, key, src);
  } else if (const ConfigField* f = config_field_find(key)) {
    set_field(c, *f, value, YAML::Mark::null_mark(), src);
  } else {
    yaml_fail(where, key, config_unknown_key_message(key));
  }
}

}  // namespace

bool operator==(const TrainConfig& a, const TrainConfig& b) {
  for (const auto& f : config_fields())
    if (config_value_yaml(f, a) != config_value_yaml(f, b)) return false;
  return true;
}

TrainConfig config_parse(const std::string& text, const std::string& name,
                         const std::vector<std::string>& overrides) {
  TrainConfig c;
  yaml_reject_parser_traps(text, name);
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
  YamlSource src;
  src.file = name;
  if (!docs.empty() && !docs[0].IsNull()) {
    if (!docs[0].IsMap())
      throw std::invalid_argument(
          src.at(docs[0].Mark()) + ": the config must be a mapping of sections (" +
          join(config_children(""), ", ") + "), got " + yaml_describe(docs[0]));
    collection_untagged(docs[0], "(top level)", src);
    apply_map(c, docs[0], "", src);
  }
  for (const auto& o : overrides) apply_override(c, o);
  // checkpoint.dir not given: the run folder's checkpoints/ (a new log.dir alone is a new run,
  // never the continuation of another run's checkpoints).
  if (!c.origin.count("checkpoint.dir") && !c.log.dir.empty()) {
    std::string dir = c.log.dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    c.checkpoint.dir = dir + (dir == "/" ? "" : "/") + "checkpoints";
  }
  return c;
}

// The path keys a user set (in the config file or an override; not those of configs stored in
// checkpoints, which earlier versions took literally): no '~' or $NAME.
namespace {
TrainConfig paths_checked(TrainConfig c) {
  for (const auto& f : config_fields())
    if (f.spec.path && c.origin.count(f.key)) {
      const ConfigRef r = config_ref(c, f);
      if (auto p = std::get_if<std::string*>(&r))
        path_unexpanded_check(**p, f.key, c.origin.at(f.key));
    }
  return c;
}
}  // namespace

TrainConfig config_load(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return paths_checked(config_parse_guarded("", "defaults", overrides));
  // A config is a small text file: a FIFO, a device or a huge file is refused before reading.
  constexpr uint64_t kMaxConfigBytes = 1 << 20;
  std::string text;
  try {
    text = file_read_bounded(path, "config file", kMaxConfigBytes);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());
  }
  TrainConfig c = config_parse_guarded(text, path, overrides);
  // A file with no keys (empty, only comments, only '---'; a truncated copy) is refused as a
  // missing config is, not trained as the defaults (the paper's 85M model). (It parsed above, so
  // reading it again cannot hang.)
  const std::vector<YAML::Node> docs = YAML::LoadAll(text);
  auto sets_a_key = [](const YAML::Node& root) {  // (empty sections, 'model:', set none)
    for (auto it = root.begin(); it != root.end(); ++it) {
      const YAML::Node v = it->second;
      if (!v.IsNull() && !(v.IsMap() && v.size() == 0)) return true;
    }
    return false;
  };
  if (docs.empty() || docs[0].IsNull() || (docs[0].IsMap() && !sets_a_key(docs[0])))
    throw std::invalid_argument(
        "config file '" + path +
        "' holds no keys (it is empty, only comments, or only empty sections): give an "
        "experiment config, e.g. configs/tiny.yaml (a small CPU run) or configs/base.yaml (the "
        "paper's model, every default spelled out)");
  return paths_checked(std::move(c));
}

TrainConfig config_parse_guarded(const std::string& text, const std::string& name,
                                 const std::vector<std::string>& overrides) {
  yaml_parse_probe(
      name, [&] { config_parse(text, name, overrides); }, fault_injection().config_parser_hang);
  return config_parse(text, name, overrides);
}

int64_t config_data_parallel(const TrainConfig& config, int world_size) {
  return config.grid.data_parallel ? config.grid.data_parallel
                                   : world_size / config.grid.sequence_parallel;
}

std::string config_metrics_path(const TrainConfig& config) {
  if (!config.log.metrics.empty()) return config.log.metrics;
  return config.log.dir + "/metrics.jsonl";
}

int64_t config_rank_count(const TrainConfig& config) {
  const int64_t dp = config.grid.data_parallel ? config.grid.data_parallel : 1;
  return dp * config.grid.sequence_parallel;
}

std::string config_to_yaml(const TrainConfig& config) {
  std::string out, section;
  for (const auto& f : config_fields()) {
    std::string sec = parent_of(f.key);
    if (sec != section) {
      if (!sec.empty()) out += sec + ":\n";
      section = sec;
    }
    out += (sec.empty() ? "" : "  ") + leaf_of(f.key) + ": " + config_value_yaml(f, config) + "\n";
  }
  return out;
}

}  // namespace longnet
