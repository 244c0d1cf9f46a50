// SentencePiece BPE training on a corpus (see tokenizer_train.h): our corpus reader feeds the
// trainer through its SentenceIterator, so that directories, JSON Lines and compressed files
// train a tokenizer the same way they are tokenized.
#include "longnet/train/tokenizer_train.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/train/sha256.h"
#include "longnet/train/tokenizer.h"

#include "longnet/longnet_tokenizer_config.h"

#if LONGNET_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#endif

namespace longnet {

#if !LONGNET_WITH_SENTENCEPIECE

TokenizerTrainSummary tokenizer_train(const TokenizerTrainOptions& options) {
  throw std::runtime_error(
      "tokenizer train: this build has no SentencePiece support: install "
      "libsentencepiece-dev and reconfigure (cmake "
      "-DLONGNET_SENTENCEPIECE=ON)");
}

#else

namespace {

constexpr uint64_t kCompressedRatio = 4;  // text bytes per compressed byte, for the estimate

// In [0, 1), from a file's name: the same files are sampled on every run and machine.
double name_unit(const std::string& name) {
  const std::string h = sha256_hex(name).substr(0, 13);  // 52 bits
  return static_cast<double>(std::stoull(h, nullptr, 16)) * 0x1.0p-52;
}

// The corpus as SentencePiece sentences: the lines of every document.
class CorpusSentences final : public sentencepiece::SentenceIterator {
 public:
  CorpusSentences(CorpusReader& reader, const TokenizerTrainOptions& o, TokenizerTrainSummary& sum)
      : reader_(reader), o_(o), sum_(sum) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override {
    if (error_.empty()) return sentencepiece::util::Status();
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, error_);
  }
  const std::string& error() const { return error_; }

  void Next() override {
    if (done_) return;
    try {
      advance();
    } catch (const std::exception& e) {
      error_ = e.what();
      done_ = true;
    }
  }

 private:
  void advance() {
    const size_t max_line = static_cast<size_t>(o_.max_sentence_bytes);
    for (;;) {
      while (pos_ < doc_.text.size()) {
        size_t end = doc_.text.find('\n', pos_);
        if (end == std::string::npos) end = doc_.text.size();
        size_t next = end + 1;
        if (end - pos_ > max_line) {  // cut a long line at a UTF-8 boundary
          end = pos_ + max_line;
          while (end > pos_ && (static_cast<unsigned char>(doc_.text[end]) & 0xC0) == 0x80) --end;
          if (end == pos_) end = pos_ + max_line;
          next = end;
        }
        const size_t start = pos_;
        // Text is counted as its lines are read, so a file larger than the whole budget (one
        // document) stops at it too: at most twice max_input_bytes (the files were sampled to
        // about max_input_bytes from estimates of their sizes).
        if (sum_.text_bytes >= 2 * o_.max_input_bytes) {
          done_ = sum_.input_capped = true;
          return;
        }
        sum_.text_bytes += std::min(next, doc_.text.size()) - start;
        pos_ = next;
        if (end > start && doc_.text.find_first_not_of(" \t\r", start) < end) {
          value_.assign(doc_.text, start, end - start);
          if (!value_.empty() && value_.back() == '\r') value_.pop_back();
          ++sum_.sentences;
          return;
        }
      }
      if (sum_.text_bytes >= 2 * o_.max_input_bytes) {
        // Capped only when text was left: a document after this one (a file that cannot be
        // read counts as text left; it is not read further).
        try {
          sum_.input_capped = sum_.input_capped || reader_.next(doc_);
        } catch (const std::exception&) {
          sum_.input_capped = true;
        }
        done_ = true;
        return;
      }
      if (!reader_.next(doc_)) {
        done_ = true;
        return;
      }
      pos_ = 0;
      if (!doc_.continued) ++sum_.documents;
      if (const size_t bad = utf8_invalid_bytes(doc_.text)) {
        if (sum_.invalid_utf8_bytes == 0) sum_.first_invalid_utf8 = doc_.where;
        sum_.invalid_utf8_bytes += bad;
      }
    }
  }

  CorpusReader& reader_;
  const TokenizerTrainOptions& o_;
  TokenizerTrainSummary& sum_;
  Document doc_;
  size_t pos_ = 0;
  std::string value_, error_;
  bool done_ = false;
};

}  // namespace

TokenizerTrainSummary tokenizer_train(const TokenizerTrainOptions& o) {
  if (o.vocab_size < 300 || o.vocab_size > (int64_t{1} << 24))
    throw std::invalid_argument("tokenizer train: --vocab-size " + std::to_string(o.vocab_size) +
                                " must be in [300, 16777216]: the 256 byte pieces and the "
                                "control pieces come first (e.g. 32000)");
  if (o.threads < 0 || o.threads > 128)
    throw std::invalid_argument(
        "tokenizer train: --threads " + std::to_string(o.threads) +
        " must be in [0, 128] (SentencePiece's limit; 0: " + std::to_string(kTrainThreads) + ")");
  if (o.out_path.empty())
    throw std::invalid_argument("tokenizer train: no output path (--out PATH.model)");
  if (o.max_input_bytes == 0 || o.max_sentences < 1 || o.max_sentence_bytes < 16)
    throw std::invalid_argument(
        "tokenizer train: max_input_bytes, max_sentences must be >= 1 "
        "and max_sentence_bytes >= 16");

  // The model never replaces a source or anything that is not a model, and never lands where a
  // later training would read it as text.
  for (const auto& src : o.sources)
    if (path_inside(o.out_path, src))
      throw std::invalid_argument("tokenizer train: --out '" + o.out_path +
                                  "' is inside --source '" + src +
                                  "' (or is it): it would replace a source file, or be read as "
                                  "text by the next training; write the model elsewhere");
  if (path_kind(o.out_path) == PathKind::kFile) {
    sentencepiece::SentencePieceProcessor existing;
    if (!existing.Load(o.out_path).ok())
      throw std::invalid_argument("tokenizer train: --out '" + o.out_path +
                                  "' exists and is not a SentencePiece model; it is not replaced. "
                                  "Give a new path, or remove the file");
  } else if (path_kind(o.out_path) != PathKind::kMissing) {
    throw std::invalid_argument("tokenizer train: --out '" + o.out_path + "' is " +
                                path_kind_text(o.out_path) + "; give a .model file path");
  }

  TokenizerTrainSummary sum;
  CorpusSummary skipped;
  const std::vector<CorpusFile> all = corpus_files(o.sources, o.corpus, &skipped);
  uint64_t estimate = 0;
  for (const auto& f : all)
    estimate += f.compression == Compression::kNone ? f.bytes : kCompressedRatio * f.bytes;
  const double keep = estimate <= o.max_input_bytes
                          ? 1.0
                          : static_cast<double>(o.max_input_bytes) / static_cast<double>(estimate);
  std::vector<CorpusFile> sampled;
  for (const auto& f : all)
    if (keep >= 1.0 || name_unit(f.name) < keep) sampled.push_back(f);
  if (sampled.empty() && !all.empty()) sampled.push_back(all.front());
  sum.files_listed = static_cast<int64_t>(all.size());
  sum.files_sampled = static_cast<int64_t>(sampled.size());
  sum.input_capped = sum.files_sampled < sum.files_listed;

  CorpusReader reader(std::move(sampled), o.corpus);
  CorpusSentences sentences(reader, o, sum);

  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "0.9995"},
      // Keep the text as it is (code: whitespace matters): no normalization, no collapsing.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", std::to_string(o.max_sentence_bytes)},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(o.threads > 0 ? o.threads : kTrainThreads)},
      {"minloglevel", o.verbose ? "0" : "2"},
  };
  sentencepiece::SetRandomGeneratorSeed(o.seed);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &sentences, &model);
  if (!sentences.error().empty()) throw std::runtime_error("tokenizer train: " + sentences.error());
  if (sum.sentences == 0)
    throw std::runtime_error(
        "tokenizer train: the sources hold no text (" + std::to_string(sum.files_sampled) +
        " file(s) sampled: " + std::to_string(reader.summary().binary_files) +
        " skipped as binary" +
        (reader.summary().wide_text_files > 0
             ? " (" + std::to_string(reader.summary().wide_text_files) +
                   " of them UTF-16 or UTF-32 text: convert to UTF-8)"
             : std::string()) +
        ", " + std::to_string(reader.summary().empty_files) + " empty" +
        (reader.summary().bad_lines > 0 ? ", " + std::to_string(reader.summary().bad_lines) +
                                              " malformed JSON line(s) with --skip-bad-lines, the "
                                              "first: " +
                                              reader.summary().first_bad_line
                                        : std::string()) +
        "); give text, JSON Lines or their .gz / .zst forms");
  if (!status.ok()) {
    // "Vocabulary size is too high (N). Please set it to a value <= M.": a text too small or too
    // uniform for N pieces; below 300 (the byte pieces and the specials) only more text helps.
    // Its message without the source location and check before it ("Internal:
    // ./src/trainer_interface.cc(660) [a == b] Vocabulary size too high ...").
    std::string text = status.ToString();
    if (const size_t check = text.find(") ["); check != std::string::npos)
      if (const size_t end = text.find("] ", check); end != std::string::npos)
        text = text.substr(end + 2);
    std::string what = "SentencePiece failed: " + text;
    std::string fix = "a smaller --vocab-size (300 or more) or more text may help";
    const size_t at = text.find("<= ");
    if (text.find("too high") != std::string::npos && at != std::string::npos) {
      const int64_t most = std::strtoll(text.c_str() + at + 3, nullptr, 10);
      what = "--vocab-size " + std::to_string(o.vocab_size) +
             " is more pieces than this text yields (at most " + std::to_string(most) + ")";
      fix = most >= 300 ? "--vocab-size " + std::to_string(most) + " or less works on this text"
                        : "that is fewer than the 300 a vocabulary needs (256 byte pieces and "
                          "the specials): give more, and more varied, text";
    }
    if (sum.input_capped)
      fix += "; only part of the sources was read (--max-input-bytes " +
             std::to_string(o.max_input_bytes) + "): a larger --max-input-bytes reads more text";
    throw std::runtime_error("tokenizer train: " + what + " (" + std::to_string(sum.sentences) +
                             " lines, " + std::to_string(sum.text_bytes) + " bytes of text; " +
                             fix + ")");
  }

  if (!make_parent_dirs(o.out_path))
    throw std::runtime_error("tokenizer train: cannot create the directory of '" + o.out_path +
                             "': " + std::strerror(errno));
  try {
    file_write_atomic(o.out_path, {{model.data(), model.size()}});
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("tokenizer train: ") + e.what());
  }
  sum.content_hash = "sentencepiece:" + sha256_hex(model);
  sum.bad_lines = reader.summary().bad_lines;
  return sum;
}

#endif  // LONGNET_WITH_SENTENCEPIECE

TokenizerTrainSummary tokenizer_train(int64_t vocab_size, const std::vector<std::string>& sources,
                                      const std::string& out_path) {
  TokenizerTrainOptions o;
  o.vocab_size = vocab_size;
  o.sources = sources;
  o.out_path = out_path;
  return tokenizer_train(o);
}

}  // namespace longnet
