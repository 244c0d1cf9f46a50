// Flags of the commands that use a trained model (generate, eval, check generate, bench
// generate): where the model comes from, and the "auto" device and dtype.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "longnet/cli/cli_flags.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/train/model_load.h"

namespace longnet {

// Declares --checkpoint, --config and --random-init (a testing aid, listed in --help only where
// random_init_shown: bench generate times models of random parameters).
void model_flags_add(CliFlags& f, bool random_init_shown = false);
// The ModelLoadOptions the flags give (device, dtype and seed set by the caller's values).
ModelLoadOptions model_flags_get(const CliFlags& f, c10::Device device, c10::ScalarType dtype,
                                 int64_t seed);

// The decode step's flags (generate, check generate, bench generate): --no-cuda-graph,
// --no-fused-step, --fused-step-max-batch and --three-pass-attention; and the IncrementalOptions
// they give (the caller sets prefill_chunk). step_flags_note: on the CPU, where they change
// nothing, those given are named in a note on stderr (rank 0), as is --fused-step-max-batch
// beside --no-fused-step.
void step_flags_add(CliFlags& f);
IncrementalOptions step_flags_get(const CliFlags& f);
void step_flags_note(const CliFlags& f, const c10::Device& device);

// "auto": cuda when a GPU is present, else cpu; otherwise device_from_name.
c10::Device device_auto(const std::string& name);
// "auto": bfloat16 on cuda, float32 on cpu; otherwise dtype_from_name.
c10::ScalarType dtype_auto(const std::string& name, const c10::Device& device);

// Under mpirun (collective over grid's world): throws std::runtime_error on a rank whose model
// (options, parameter names, shapes, dtypes and bytes, as a CRC-32) differs from rank 0's, as
// when a checkpoint path names other files on another host. `source` names the model.
void model_agree_across_ranks(ProcessGrid& grid, const LongNetLM& model, const std::string& source);

// Refuses a generation of B sequences (prefilled together: `prefilled` of them, with prompts
// of up to P tokens, `chunk` tokens at a time) that cannot fit `device`: its dilated KV caches
// and the steps' buffers (10% more, measured on the CPU), plus one prefill chunk's largest layer
// activation and last float32 logits for each prefilled sequence. Throws std::runtime_error
// naming `command`, the sizes and the fix; on the CPU, before the kernel's OOM killer would end
// the process.
void generation_memory_check(const LongNetLM& model, int64_t B, int64_t prefilled, int64_t P,
                             int64_t chunk, const c10::Device& device, const std::string& command);

// Throws std::invalid_argument when run under mpirun with more than one rank: `command` runs on
// one device.
void single_rank_require(const std::string& command);

}  // namespace longnet
