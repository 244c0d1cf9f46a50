// libFuzzer target for the config loader (the guarded parse that config_load uses): any input
// must either load or raise std::invalid_argument (never crash, hang or throw anything else), and
// a loaded config must survive config_to_yaml -> config_parse unchanged. Built with clang by
// tests/fuzz/run_fuzzer.sh; tests/fuzz/replay_main.cpp replays the corpus in CI.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto config = longnet::config_parse_guarded(text, "fuzz.yaml");
    auto again = longnet::config_parse(longnet::config_to_yaml(config), "resolved.yaml");
    if (again != config) __builtin_trap();  // the resolved YAML must mean the same config
    for (int world : {1, 2, 4}) {
      try {
        longnet::config_check(config, world);
      } catch (const std::invalid_argument&) {
      }
    }
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
