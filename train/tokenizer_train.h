// Training a tokenizer on a corpus: a SentencePiece BPE model with byte fallback, offline, from
// the same sources `data build` reads (corpus.h). Behind `longnet tokenizer train`.
//
// Input bound, so that a huge corpus does not take forever: files are sampled by a hash of their
// name with probability min(1, max_input_bytes / estimate), estimate = plain bytes + 4 x
// compressed bytes on disk, and reading stops after 2 x max_input_bytes of text whatever the
// estimate. Documents are cut into lines (SentencePiece's sentences; empty lines dropped, lines
// longer than max_sentence_bytes cut at UTF-8 boundaries); SentencePiece keeps a uniform sample
// of max_sentences of them (its reservoir sampler, seeded by `seed`). Same inputs and options,
// same model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longnet/train/corpus.h"

namespace longnet {

constexpr int kTrainThreads = 16;

struct TokenizerTrainOptions {
  int64_t vocab_size = 32000;
  std::vector<std::string> sources;
  std::string out_path;  // the .model file written
  CorpusOptions corpus;
  uint64_t max_input_bytes = uint64_t{1} << 30;
  int64_t max_sentences = 4000000;
  int64_t max_sentence_bytes = 4192;  // SentencePiece's default max_sentence_length
  uint32_t seed = 1;
  // SentencePiece records the count in the model, so its hash depends on it: 0 takes a fixed
  // kTrainThreads, the same on every machine. At most 128 (SentencePiece's limit).
  int threads = 0;
  bool verbose = false;  // SentencePiece's own progress log on stderr
};

struct TokenizerTrainSummary {
  int64_t files_listed = 0, files_sampled = 0, documents = 0, sentences = 0;
  uint64_t text_bytes = 0;
  int64_t bad_lines = 0;      // malformed JSON lines skipped (CorpusOptions::skip_bad_lines)
  bool input_capped = false;  // max_input_bytes left text unread (files not sampled, or cut)
  // Bytes of the documents read that are no UTF-8 (SentencePiece learns U+FFFD for each), and
  // the first document that held one.
  uint64_t invalid_utf8_bytes = 0;
  std::string first_invalid_utf8;
  std::string content_hash;  // of the model written (Tokenizer::content_hash)
};

// Trains and writes out_path (through out_path + ".tmp", then a rename). Throws
// std::invalid_argument for bad options, std::runtime_error for unreadable sources, a corpus
// with no text, or SentencePiece's own complaints (e.g. a vocabulary too large for the text),
// and when this build has no SentencePiece (saying what to install).
TokenizerTrainSummary tokenizer_train(const TokenizerTrainOptions& options);
TokenizerTrainSummary tokenizer_train(int64_t vocab_size, const std::vector<std::string>& sources,
                                      const std::string& out_path);

}  // namespace longnet
