// Shared flags of the model-using commands (see model_flags.h).
#include "longnet/cli/model_flags.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "longnet/cli/common_flags.h"
#include "longnet/core/device_memory.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/core/incremental_lm.h"
#include "longnet/core/int_math.h"
#include "longnet/core/text.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/crc32.h"
#include "longnet/train/model_export.h"

namespace longnet {

ModelLoadOptions model_flags_get(const CliFlags& f, c10::Device device, c10::ScalarType dtype,
                                 int64_t seed) {
  ModelLoadOptions o;
  o.checkpoint = f.get("checkpoint");
  o.config = f.get("config");
  o.random_init = f.get_switch("random-init");
  o.device = device;
  o.dtype = dtype;
  o.seed = seed;
  if (o.random_init && !o.checkpoint.empty())
    throw std::invalid_argument(
        "--random-init and --checkpoint both say where the parameters come from; give one "
        "(--random-init with --config CONFIG.yaml, or --checkpoint)");
  if (!o.random_init && o.checkpoint.empty())
    throw std::invalid_argument(
        "--checkpoint is required: a `longnet train` checkpoint, or a "
        "parameters file with --config CONFIG.yaml");
  return o;
}

void step_flags_add(CliFlags& f) {
  f.add_switch("no-cuda-graph", "run the step without a CUDA graph");
  f.add_switch("no-fused-step",
               "run the step one op per module (not the fused small-batch linears)");
  f.add("fused-step-max-batch", std::to_string(IncrementalOptions{}.fused_step_max_batch),
        "the largest batch whose step runs the fused small-batch linears (at most " +
            std::to_string(kSmallLinearMaxRows) + ")",
        spec_range(0, double(kSmallLinearMaxRows)));
  f.add_switch("three-pass-attention",
               "run the cache's attention as three kernels (store, attend, combine), not one");
}

void step_flags_note(const CliFlags& f, const c10::Device& device) {
  std::vector<std::string> idle;  // given, and changing nothing here
  for (const char* flag :
       {"no-cuda-graph", "no-fused-step", "fused-step-max-batch", "three-pass-attention"})
    if (f.given(flag) && !device.is_cuda()) idle.push_back(std::string("--") + flag);
  if (mpi_world_rank() == 0) {
    if (!idle.empty())
      std::cerr << "longnet " << f.command() << ": note: " << join(idle, ", ")
                << " choose between CUDA kernels; on the CPU they change nothing" << std::endl;
    else if (f.given("fused-step-max-batch") && f.get_switch("no-fused-step"))
      std::cerr << "longnet " << f.command()
                << ": note: --fused-step-max-batch changes nothing with --no-fused-step"
                << std::endl;
  }
}

IncrementalOptions step_flags_get(const CliFlags& f) {
  IncrementalOptions io;
  io.cuda_graph = !f.get_switch("no-cuda-graph");
  io.fused_step = !f.get_switch("no-fused-step");
  io.fused_step_max_batch = f.get_int("fused-step-max-batch");
  io.one_pass_attention = !f.get_switch("three-pass-attention");
  return io;
}

c10::Device device_auto(const std::string& name) {
  if (name == "auto") return at::hasCUDA() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  c10::DeviceType type;
  try {
    type = device_from_name(name);
  } catch (const std::invalid_argument&) {  // (these commands also take auto)
    throw std::invalid_argument("--device: '" + name +
                                "' is not a device; use cpu, cuda or auto (cuda when present)");
  }
  if (type == c10::kCUDA && !at::hasCUDA())
    throw std::invalid_argument(
        "--device cuda: this machine has no usable GPU (no CUDA device or "
        "driver, or a build without the CUDA path); use --device cpu or "
        "auto");
  return type == c10::kCUDA ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

c10::ScalarType dtype_auto(const std::string& name, const c10::Device& device) {
  if (name == "auto") return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  for (const char* known : {"float32", "bfloat16", "float16", "float64"})
    if (name == known) return dtype_from_name(name);
  throw std::invalid_argument("--dtype: '" + name +
                              "' is not a dtype; use auto (bfloat16 on cuda, float32 on cpu), "
                              "float32, bfloat16, float16 or float64");
}

void model_agree_across_ranks(ProcessGrid& grid, const LongNetLM& model,
                              const std::string& source) {
  if (grid.world_size == 1) return;
  uint32_t crc = 0;
  std::string names;
  for (const auto& p : model->named_parameters()) {
    const auto t = p.value().detach().contiguous().cpu();
    names += p.key() + " " + std::string(c10::toString(t.scalar_type()));
    for (int64_t d : t.sizes()) names += " " + std::to_string(d);
    names += ";";
    crc = crc32_update(crc, t.data_ptr(), t.nbytes());
  }
  const std::string mine = lm_options_json(model->options()) + "|" +
                           crc32_hex(crc32_update(0, names.data(), names.size())) + "|" +
                           crc32_hex(crc);
  const std::string root = world_broadcast(grid, mine, 0);
  if (mine != root)
    throw std::runtime_error(
        "rank " + std::to_string(grid.world_rank) + " loaded another model than rank 0 from " +
        source +
        " (options or parameters differ): under mpirun every rank must read the same "
        "checkpoint, so copy the same file to every host");
}

void single_rank_require(const std::string& command) {
  mpi_ensure_initialized();
  if (mpi_world_size() > 1)
    throw std::invalid_argument(
        "longnet " + command + " runs on one rank (one GPU, or the CPU), not under mpirun with " +
        std::to_string(mpi_world_size()) +
        " ranks; run it without mpirun (prompts of any length prefill in chunks on one device, "
        "--prefill-chunk; `longnet generate` can also split a prefill over ranks under mpirun)");
}

void generation_memory_check(const LongNetLM& model, int64_t B, int64_t prefilled, int64_t P,
                             int64_t chunk, const c10::Device& device, const std::string& command) {
  const auto& o = model->options();
  const int64_t element = model->token_embedding->weight.element_size();
  const int64_t caches = IncrementalLM::cache_bytes_for(o, B, element);
  const auto& L = o.layer;
  const double d = double(L.d_model);
  // Per prompt token of a chunk: the attention's branch outputs beside q, k, v, or the
  // feed-forward's hidden. On the CPU both are alive at the peak, with one branch's scores
  // over the segment (measured, session 15: about 13.2 KB per token of a float32 prefill of
  // tiny.yaml's model; this count gives 13.8 KB); on GPUs the allocator reuses the first for
  // the second.
  const double attention = double(4 + L.attention.segment_lengths.size()) * d,
               ffn = d + 2.0 * double(L.dim_feedforward);
  const double width = device.is_cuda() ? std::max(attention, ffn) : attention + ffn - d;
  // The prefill rounds its chunk up to a multiple of the largest segment (no segment crosses a
  // chunk): a smaller --prefill-chunk does not shrink it below one segment.
  const int64_t block =
      *std::max_element(L.attention.segment_lengths.begin(), L.attention.segment_lengths.end());
  const int64_t rows = chunk >= P ? P : std::min(P, ceil_div(chunk, block) * block);
  const bool chunk_helps = P > block && chunk > block;
  const double scores = dilated_plain_score_bytes(
      rows, P, L.num_heads, L.attention.segment_lengths, L.attention.dilation_rates,
      model->token_embedding->weight.scalar_type(), device);
  const double prefill = double(prefilled) * (double(rows) * width * double(element) + scores +
                                              4.0 * double(o.vocab_size)) +
                         8.0 * double(prefilled) * double(P);
  const double total = caches < 0 ? INFINITY : 1.1 * double(caches) + prefill;
  char sizes[160];
  std::snprintf(sizes, sizeof(sizes), "%.2f GiB of KV caches, %.2f GiB of prefill",
                caches < 0 ? INFINITY : double(caches) / double(1 << 30),
                prefill / double(1 << 30));
  device_memory_check(
      total, device,
      command + ": " + std::to_string(B) + " sequence(s) of prompts up to " + std::to_string(P) +
          " tokens (" + sizes + ")",
      std::string(command == "generate" ? "run fewer sequences at a time (fewer lines of "
                                          "--prompts-file), shorter prompts"
                                        : "give smaller --batches or --prompt-lens") +
          (chunk_helps ? " or a smaller --prefill-chunk (at least the largest "
                         "segment, " +
                             std::to_string(block) + ")"
                       : std::string("; a prefill chunk is at least the largest "
                                     "segment (") +
                             std::to_string(block) + " tokens) long, whose attention this is"));
}

}  // namespace longnet
