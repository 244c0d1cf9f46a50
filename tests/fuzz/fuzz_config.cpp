// libFuzzer target for the config loader: any input must either load or raise
// std::invalid_argument (never crash, hang or throw anything else), and a loaded config must
// survive config_to_yaml -> config_parse unchanged. Under libFuzzer (tests/fuzz/run_fuzzer.sh)
// it drives config_parse in-process, so a timeout it reports is yaml-cpp looping; the replay of
// the corpus in CI (tests/fuzz/replay_main.cpp) drives the guarded parse that config_load uses,
// which must turn such inputs into errors.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "longnet/train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
#ifdef LONGNET_FUZZ_IN_PROCESS
    auto config = longnet::config_parse(text, "fuzz.yaml");
#else
    auto config = longnet::config_parse_guarded(text, "fuzz.yaml");
#endif
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
