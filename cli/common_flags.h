// Flags and values that several commands share: the device, the dtype, the attention engine's
// options, and the command line as results files record it.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

#include "longnet/cli/cli_flags.h"
#include "longnet/core/options.h"

namespace longnet {

// Allowed ranges of numeric flags that several commands share (CliFlags::add checks them).
inline const OptionSpec kTokens = spec_range(1, double(kMaxTokens));   // lengths, segments, rates
inline const OptionSpec kTokens0 = spec_range(0, double(kMaxTokens));  // the same, 0 allowed
inline const OptionSpec kCount = spec_range(1, 1 << 20);               // batch sizes and the like
inline const OptionSpec kRanks = spec_range(1, 1 << 20);
inline const OptionSpec kHeads = spec_range(1, 1 << 16);
inline const OptionSpec kHeadDim = spec_range(1, 1024);
inline const OptionSpec kRuns0 = spec_range(0, 100000);  // warm-up runs
inline const OptionSpec kRuns1 = spec_range(1, 100000);  // timed runs
// (ATen's CPU generator keeps 32 bits of a seed: larger ones would repeat smaller ones' draws)
inline const OptionSpec kSeed = spec_range(0, 4294967295.0);

// Under mpirun every rank must run the same command with the same flags: a rank started with
// others would wait in another collective (a hang), fail inside MPI, or compute something else.
// Compares this rank's command and flags (but `rank0_only`, whose rank-0 values the command
// uses on every rank, e.g. generate's prompt) with rank 0's; on a difference every rank throws
// std::invalid_argument naming the first differing rank, the flag and both values. The first
// collective of each command that calls it, so that ranks running different commands meet here.
// Nothing happens in a process that mpirun did not start.
void flags_agree_across_ranks(const CliFlags& f, const std::vector<std::string>& rank0_only = {});

// Refuses (std::invalid_argument) a command that writes one output with every core of its
// machine (`data build`, `tokenizer train`, `export`) started as one of several ranks of an
// mpirun job: the copies would build the same output together and the launcher would end the
// job when the first is refused. Read from the launcher's environment; starts no MPI.
void refuse_several_ranks(const std::string& command);

// "cpu" or "cuda"; throws std::invalid_argument naming both.
c10::DeviceType device_from_name(const std::string& name);
// "float32" -> kFloat, also bfloat16, float16, float64; throws naming the accepted names.
c10::ScalarType dtype_from_name(const std::string& name);
// The name dtype_from_name takes ("float32" for kFloat); the ATen name for others.
std::string dtype_name(c10::ScalarType dtype);

// Declares --backend, --streams, --no-fused-merge, --chunk-above and --memory-trace (the
// engine's options, core/options.h), and reads them back, checked (engine_options_check).
void engine_flags_add(CliFlags& f);
EngineOptions engine_flags_get(const CliFlags& f);
// On the CPU, a note (log_info) naming the engine flags given, which act only on a GPU.
void engine_flags_cpu_note(const EngineOptions& e, const c10::Device& device,
                           const std::string& command);

// Throws std::invalid_argument("<what> = a x b x ... elements does not fit ...") when the product
// of a tensor's sizes overflows 64-bit integers (flags are range-checked one by one; their
// product is checked here before any allocation or index arithmetic).
void tensor_size_check(const std::string& what, const std::vector<int64_t>& sizes);

// tensor_size_check, then refuses (core/device_memory.h) when `copies` tensors of these sizes
// and dtype, a lower bound of what the command allocates, exceed the device's memory: a clear
// error before anything is allocated, where the CPU's overcommit would otherwise let the
// allocation through and end in swapping or the OOM killer.
// scores: the attention scores the plain maths holds besides (dilated_plain_score_bytes).
void tensor_memory_check(const std::string& command, const std::string& what,
                         const std::vector<int64_t>& sizes, int copies, c10::ScalarType dtype,
                         const c10::Device& device, double scores = 0);

// Throws std::invalid_argument naming the key when two key=value overrides set the same config
// key to different values ("train.steps=5 train.steps=6": the last would silently win), or one
// sets a section and the other a key in it ("train={steps: 5}" and "train.steps=6").
void overrides_unique_check(const std::vector<std::string>& overrides, const std::string& command);

// "longnet bench attention --seq-lens 32768" for results files.
std::string command_line(const std::string& name, const std::vector<std::string>& args);

}  // namespace longnet
