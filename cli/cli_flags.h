// A strict command-line flag parser for the `longnet` subcommands: every flag must be declared,
// values are type-checked, and errors name the flag and what would work.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

class CliFlags {
 public:
  // command: e.g. "bench attention", used in messages.
  explicit CliFlags(std::string command) : command_(std::move(command)) {}

  // Declares a flag taking a value, with its default text, a help line, and for numbers (and
  // lists of numbers) the allowed range: get_int, get_double and get_int_list check it and name
  // the flag, the value and the range.
  void add(const std::string& name, const std::string& default_value, const std::string& help,
           const OptionSpec& range = {});
  // Declares a boolean switch (no value).
  void add_switch(const std::string& name, const std::string& help);
  // The same, left out of usage(): testing aids (the --debug-* flags).
  void add_hidden(const std::string& name, const std::string& default_value,
                  const std::string& help, const OptionSpec& range = {});
  void add_switch_hidden(const std::string& name, const std::string& help);
  // Lets flag `name` be given an empty value (--prompt '': a text that may be empty); given()
  // tells it from the flag left out. Other flags refuse one (it would read as not given).
  void allow_empty(const std::string& name);
  // Parses args; positional arguments are kept in order. Throws std::invalid_argument naming
  // the bad flag, a flag given twice, or an argument with one dash ("-checkpoint"; "-" is a
  // positional). "--help" sets help_requested().
  void parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_; }
  // "usage: longnet COMMAND [flags]" and flags_usage().
  std::string usage() const;
  // One entry per visible flag: name, default and help.
  std::string flags_usage() const;
  const std::vector<std::string>& positional() const { return positional_; }
  // For commands that take only flags: throws std::invalid_argument naming the first positional.
  void no_positional() const;
  // The declared flags' names, in declaration order.
  const std::vector<std::string>& names() const { return order_; }

  std::string get(const std::string& name) const;
  bool get_switch(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  // Comma-separated integers: "2048,4096".
  std::vector<int64_t> get_int_list(const std::string& name) const;
  // Whether the user gave this flag (rather than its default).
  bool given(const std::string& name) const;
  const std::string& command() const { return command_; }
  // Every declared flag but those in `skip`, one per line in declaration order, as
  // "--name=value" (a default as if given): what two runs of this command compare to know they
  // were started alike.
  std::string values_text(const std::vector<std::string>& skip = {}) const;

 private:
  struct Flag {
    std::string value, help;
    bool is_switch = false, given = false, hidden = false, empty_ok = false;
    OptionSpec range;
  };
  const Flag& find(const std::string& name) const;
  // Throws naming the flag unless v lies in its range.
  void range_check(const std::string& name, double v, const std::string& shown) const;
  // text as flag `name`'s whole number, range-checked (past 64 bits: its range named, if any).
  int64_t int_value(const std::string& name, const std::string& text) const;
  std::string command_;
  std::map<std::string, Flag> flags_;
  std::vector<std::string> order_, positional_;
  bool help_ = false;
};

// Parses a whole decimal integer (optional sign, digits only, within int64); throws
// std::invalid_argument mentioning `what` otherwise.
int64_t parse_int_strict(const std::string& text, const std::string& what);
double parse_double_strict(const std::string& text, const std::string& what);

}  // namespace longnet
