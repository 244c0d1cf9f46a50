// libFuzzer target for the command line: the first byte picks a command, the rest are its
// arguments (split at NUL and newline). Parsing them against the command's real flag
// declarations (cli/command_flags.cpp), reading every flag as text, switch, whole number, number
// and list, and, for `train`, applying its key=value overrides to a config and checking it, must
// either succeed or raise std::invalid_argument naming the problem: never crash, overflow, divide
// by zero or throw anything else.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/train/config.h"

namespace {

template <typename F>
void refused_or_ok(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& names = longnet::command_names();
  const std::string command = names[data[0] % names.size()];
  std::vector<std::string> args(1);
  for (size_t i = 1; i < size; ++i) {
    const char ch = static_cast<char>(data[i]);
    if (ch == '\0' || ch == '\n')
      args.emplace_back();
    else
      args.back() += ch;
  }
  if (args.back().empty()) args.pop_back();
  longnet::CliFlags f(command);
  if (!longnet::command_flags(command, f)) __builtin_trap();
  try {
    f.parse(args);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  for (const auto& name : f.names()) {
    refused_or_ok([&] { f.get(name), f.get_switch(name), f.given(name); });
    refused_or_ok([&] { f.get_int(name); });
    refused_or_ok([&] { f.get_double(name); });
    refused_or_ok([&] { f.get_int_list(name); });
  }
  if (command == "train") {
    std::vector<std::string> overrides;
    for (const auto& a : f.positional())
      if (a.find('=') != std::string::npos) overrides.push_back(a);
    refused_or_ok([&] {
#ifdef LONGNET_FUZZ_IN_PROCESS
      auto c = longnet::config_parse("", "overrides", overrides);
#else
      auto c = longnet::config_parse_guarded("", "overrides", overrides);
#endif
      for (int world : {1, 2, 3, 4}) refused_or_ok([&] { longnet::config_check(c, world); });
    });
  }
  return 0;
}
