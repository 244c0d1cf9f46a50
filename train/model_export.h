// Exporting a trained model to the formats other tools read: the parameters as a safetensors
// file (an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the raw little-endian bytes) and the model's options as JSON.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

// Writes tensors (any device; written contiguous, on the CPU, in their dtype: float64/32/16,
// bfloat16, int64/32/16/8, uint8 or bool) and string metadata to `path` as safetensors,
// atomically (a temporary file, fsync, rename). Throws naming the path or the tensor.
void safetensors_write(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The `model:` options as a JSON object (every key of options_visit, in its order).
std::string lm_options_json(const LongNetLMOptions& o);

struct ExportSummary {
  int64_t step = 0, tensors = 0, bytes = 0;
  std::string tokenizer_file;  // the tokenizer's copy in the export ("" when none)
  std::string tokenizer_note;  // why the tokenizer was not copied ("" when it was, or is bytes)
};

// Reads a `longnet train` checkpoint (checked as model_load checks it) and writes
// out_dir/model.safetensors (its parameters, cast to `dtype` when it is float32, bfloat16 or
// float16; "" keeps them float32, as training stores them) and
// out_dir/config.json ({"architecture": "LongNetLM", "format": "longnet-export-1", "step",
// "model": lm_options_json, "tokenizer": {"kind", "spec", "hash", "file"}}) with the
// tokenizer's file copied as out_dir/tokenizer.model or tokenizer.tiktoken when it is here and
// unchanged. out_dir is created if needed; files there are replaced atomically.
ExportSummary checkpoint_export(const std::string& checkpoint, const std::string& out_dir,
                                const std::string& dtype = "");

}  // namespace longnet
