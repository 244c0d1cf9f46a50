// The validation tokens that `longnet eval` scores, behind one function: evaluation needs only
// "how many validation tokens, and the ones in [start, start + count)".
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

namespace longnet {

struct ValidationTokens {
  int64_t size = 0;         // tokens in the validation split
  int64_t vocab_size = 0;   // every id is below it (256: bytes)
  std::string description;  // for logs: "data/x.tokens (validation: 123456 tokens)"
  // The tokenizer that made the data and its content hash, as recorded: a sharded dataset's
  // manifest, "bytes" for a byte-token file; "" for llm.c shards (they record none).
  std::string tokenizer_spec, tokenizer_hash;
  // Tokens [start, start + count) as (count,) int64 on the CPU; 0 <= start, start + count <= size.
  std::function<at::Tensor(int64_t start, int64_t count)> read;
};

// Opens the validation split of the dataset at `path` (any format training reads,
// train/token_dataset.h). llm.c shards record no vocabulary (only their token width, 2^16 or
// 2^32): there, as in training, the ids are bounded by model_vocab (a read refuses an id past
// it, naming it). Throws std::runtime_error naming the file when it cannot.
ValidationTokens validation_tokens_open(const std::string& path, int64_t model_vocab);

}  // namespace longnet
