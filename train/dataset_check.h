// The rules between a config and the dataset it opened (issue 20): the tokenizer the config
// names must be the one the dataset was built with (compared by content hash, so that a copy of
// the file elsewhere matches, and without the tokenizer's library where this build lacks it:
// then the hash is the kind and the SHA-256 of the file), and model.vocab_size must cover the
// data's vocabulary. Errors name both values and where the config set them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "longnet/train/config.h"
#include "longnet/train/dataset_manifest.h"

namespace longnet {

class TokenDataset;

// "KIND:SHA256" of a tokenizer spec: content_hash() when this build has the kind, else computed
// from the file (a tokenizer's content hash is its kind and the SHA-256 of its model file).
// Throws naming the file when it cannot be read.
std::string tokenizer_spec_hash(const std::string& spec);
// The same computed from the file alone (KIND:PATH specs), as it is without the library.
std::string tokenizer_file_hash(const std::string& spec);

// The tokenizer a model's training data was made with, as far as its config tells: spec and
// content hash ("" when not known). data.tokenizer when set (training checked it against its
// dataset), else the one the manifest of data.path records (a dataset directory or its
// manifest.json, when here), "bytes" for a byte-token file; an empty spec when it cannot be
// told (llm.c shards, a dataset not here).
struct RecordedTokenizer {
  std::string spec, hash;
};
RecordedTokenizer config_data_tokenizer(const TrainConfig& config);
// Its content hash: the recorded one, else the spec's file's; "" when the file is not here.
std::string recorded_hash(const RecordedTokenizer& t);

// Whether two tokenizers (spec and hash; a hash "" is computed from the spec's file where it can
// be read) are the same, by content hash (a copy of the file elsewhere matches); nullopt when a
// hash cannot be had (the file is not here), so that the caller can say it could not tell.
std::optional<bool> tokenizers_same(const RecordedTokenizer& a, const RecordedTokenizer& b);

// Refuses (std::runtime_error naming `dataset`) a manifest whose vocabulary or end-of-text id is
// not its tokenizer's, as an edited manifest: those bound the ids read, so a larger vocabulary
// would let ids that are no token through, a smaller one call good shards corrupt. Compared with
// `spec` when given (the caller matched it by hash), else with the recorded file where it is
// here unchanged (nothing to compare with otherwise).
void manifest_vocab_check(const DatasetManifest& m, const std::string& dataset,
                          const std::string& spec);

// Checks data.tokenizer against the dataset and model.vocab_size against its vocabulary, and
// sets the bound every token id read must stay below (for llm.c shards, which record no
// vocabulary: model.vocab_size, or the tokenizer's). Throws std::invalid_argument (config rules)
// or std::runtime_error (an unreadable tokenizer file). Returns a line for the log.
std::string dataset_config_check(const TrainConfig& config, TokenDataset& data);

// A CRC-32 of 16 evenly spread spans of up to 4,096 of `size` tokens, as read(start, count)
// returns them: a cheap fingerprint that tells whether ranks under mpirun read the same data (a
// file at one path may differ between hosts).
uint32_t tokens_sampled_crc(int64_t size,
                            const std::function<at::Tensor(int64_t start, int64_t count)>& read);

}  // namespace longnet
