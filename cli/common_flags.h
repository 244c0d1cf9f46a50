// Flags and values that several commands share: the device, the dtype, the attention engine's
// options, and the command line as results files record it.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "cli/cli_flags.h"
#include "core/options.h"

namespace longnet {

// "cpu" or "cuda"; throws std::invalid_argument naming both.
c10::DeviceType device_from_name(const std::string& name);
// "float32" -> kFloat, also bfloat16, float16, float64; throws naming the accepted names.
c10::ScalarType dtype_from_name(const std::string& name);

// Declares --backend, --streams, --no-fused-merge, --chunk-above and --memory-trace (the
// engine's options, core/options.h), and reads them back, checked (engine_options_check).
void engine_flags_add(CliFlags& f);
EngineOptions engine_flags_get(const CliFlags& f);

// "longnet bench attention --seq-lens 32768" for results files.
std::string command_line(const std::string& name, const std::vector<std::string>& args);

}  // namespace longnet
