// Strict YAML for configs: yaml-cpp is lenient (anything converts to a string, duplicate keys
// are kept, `010` and `yes` mean different things in YAML 1.1 and 1.2) and loops forever on some
// malformed documents, so every scalar is parsed here from its raw text and quoting, and the
// known parser traps are refused before yaml-cpp sees the text.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>

namespace longnet {

// The deepest nesting of [ ] and { } a config or an override may hold (yaml-cpp recurses per
// level: 100,000 levels exhaust its stack guard with "bad file"; a config needs a few).
constexpr int kMaxFlowDepth = 64;

// Throws std::invalid_argument("<where>: <key>: <msg>").
[[noreturn]] void yaml_fail(const std::string& where, const std::string& key,
                            const std::string& msg);

// Shortest text that reads back to the same double; yaml_double_text keeps it visibly a float
// ("0.0", "6.0e-04") also to YAML 1.1 readers.
std::string double_text(double v);
std::string yaml_double_text(double v);

// How a value looked in the file, for "got ..." in messages.
std::string yaml_describe(const YAML::Node& n);

// Where a value came from: a file (with the node's line) or one command-line override.
struct YamlSource {
  std::string file;      // set for a config file
  std::string override;  // "optim.lr=3e-4" for an override
  std::string at(const YAML::Mark& mark) const;
};

// Scalars parsed from their raw text: a whole number (no float, octal, hex or leading zeros), a
// finite number, true/false (no YAML 1.1 booleans), a string. `example` is shown in messages.
int64_t yaml_int(const YAML::Node& n, const std::string& key, const std::string& where,
                 const std::string& example);
double yaml_float(const YAML::Node& n, const std::string& key, const std::string& where,
                  const std::string& example);
bool yaml_bool(const YAML::Node& n, const std::string& key, const std::string& where);
std::string yaml_string(const YAML::Node& n, const std::string& key, const std::string& where,
                        const std::string& example);

// Refuses what yaml-cpp (0.7, 0.8) never returns on or misreads (control characters, lines
// starting with ',' outside brackets, a document that does not start with a plain key); throws
// std::invalid_argument naming name:line.
void yaml_reject_parser_traps(const std::string& text, const std::string& name);

// Runs parse(), which must throw std::invalid_argument for ordinary errors, once in a child
// process limited to 10 s and 2 GiB beyond the address space in use, and throws
// std::invalid_argument naming `name` if the child did not finish (yaml-cpp looping). With
// hang_for_tests the child never returns (to test the limit).
void yaml_parse_probe(const std::string& name, const std::function<void()>& parse,
                      bool hang_for_tests);

// Edits (insert, delete, substitute, swap two neighbours) between a and b.
size_t edit_distance(const std::string& a, const std::string& b);
// A typo is a few edits away ("modle" for "model"), or a prefix ("warmup" for "warmup_steps").
bool looks_like(const std::string& typed, const std::string& known);

}  // namespace longnet
