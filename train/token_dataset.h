// Token datasets as training reads them: a training and a validation split, each a sequence of
// tokens stored in one or more files, read with pread (train/data_file.h) a few tokens at a time
// so that each rank reads only its own part. Three on-disk formats (config data.format):
//
//   longnet  a directory made by `longnet data build` (train/dataset_manifest.h): manifest.json
//            and shards of uint16 or uint32 tokens; data.path is the directory or its manifest
//   nanogpt  a directory of llm.c / nanoGPT-speedrun `.bin` shards (train/shard_header.h):
//            files whose name holds "val" are the validation split, the others training, each
//            split in name order
//   legacy   one byte-token file of `longnet data build SRC_DIR OUT` (train/token_data.h)
//   auto     whichever of these data.path is
//
// A split is the concatenation of its shards, so a window may cross from one shard into the
// next. Every file is checked when the dataset opens (sizes and headers; CRC-32s on request) and
// again on each read: a shard that shrank or vanished, or that holds a token id at or above the
// vocabulary, is an error naming the shard.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "longnet/train/dataset_manifest.h"

namespace longnet {

class DataFile;

enum class DataSplit { kTrain = 0, kVal = 1 };
const char* split_name(DataSplit s);  // "training", "validation"

// One thread reads a TokenDataset at a time (reads share a buffer and the open files).
class TokenDataset {
 public:
  // Opens data.path as `format` (auto | longnet | nanogpt | legacy). Throws std::runtime_error
  // naming the file and what would work when it is missing, not a regular file or directory
  // (FIFOs and devices are refused before they are opened), of another format, incomplete (an
  // interrupted build), when a shard's size or header disagrees with the manifest, or when the
  // training split (with need_train; a reader of the validation split alone, as eval, needs
  // none) or, with need_val, the validation split is empty; and std::invalid_argument for an
  // unknown format.
  static std::unique_ptr<TokenDataset> open(const std::string& path,
                                            const std::string& format = "auto",
                                            bool need_val = true, bool need_train = true);
  ~TokenDataset();
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }
  // The manifest of a longnet dataset, else nullptr.
  const DatasetManifest* manifest() const { return manifest_.get(); }
  int64_t tokens(DataSplit s) const;
  // The files of a split, in order.
  std::vector<std::string> files(DataSplit s) const;

  // Every id read must be below this: the manifest's vocabulary, 256 for a legacy file, and for
  // llm.c shards the largest id their width holds until set_vocab_bound names the model's.
  int64_t vocab_bound() const { return vocab_bound_; }
  // What set it ("model.vocab_size", data.tokenizer's vocabulary, ...); "" for the dataset's own.
  const std::string& vocab_bound_source() const { return vocab_bound_source_; }
  // `source` names the bound in the message for an id past it (e.g. "model.vocab_size").
  void set_vocab_bound(int64_t bound, const std::string& source = "");
  // llm.c shards record no vocabulary: their ids are bounded by the model's too, in training and
  // in eval alike. (Other formats keep their own bound; it is checked against the model.)
  void bound_ids_by_model(int64_t model_vocab);

  // Tokens [start, start + count) of split s into out. Throws std::out_of_range outside the
  // split, and std::runtime_error naming the shard when it shrank, vanished or changed since
  // the dataset opened, or when it holds an id >= vocab_bound().
  void read(DataSplit s, int64_t start, int64_t count, int64_t* out) const;

  // Checks the CRC-32 of the shards whose index (training shards first, then validation) is
  // rank mod world, against the manifest (longnet datasets); llm.c / nanoGPT shards, which carry
  // no checksum, are read whole for an id past the vocabulary bound instead. Returns the index
  // and the message of the first bad shard, or {-1, ""}. With `only`, the shards of that split
  // alone (indices still count over both).
  std::pair<int64_t, std::string> verify_checksums(int rank, int world,
                                                   std::optional<DataSplit> only = {}) const;
  // The number of shards over both splits, and the path of shard `index` in that order.
  int64_t shard_count() const;
  const std::string& shard_path(int64_t index) const;

  // One line for the log: format, shards and tokens per split, vocabulary.
  std::string summary() const;

 private:
  struct Shard {
    std::string path;
    uint64_t data_offset = 0;  // bytes before the first token
    int64_t tokens = 0;
    uint32_t width = 1;  // bytes per token
    uint64_t file_size = 0;
    bool has_crc = false;
    uint32_t crc = 0;
  };
  TokenDataset() = default;
  void open_longnet(const std::string& manifest_file);
  void open_nanogpt(const std::string& dir);
  // "" when every id of shard i of split s is below vocab_bound_, else read_piece's message
  // naming the first one past it.
  std::string ids_check(DataSplit s, size_t i) const;
  void open_legacy(const std::string& file);
  void add_shard(DataSplit s, Shard shard);
  const DataFile& file_of(DataSplit s, size_t i) const;
  void read_piece(DataSplit s, size_t i, int64_t offset, int64_t count, int64_t* out) const;

  std::string path_, format_;
  std::unique_ptr<DatasetManifest> manifest_;
  std::vector<Shard> shards_[2];
  std::vector<int64_t> starts_[2];  // first token of each shard within its split
  int64_t tokens_[2] = {0, 0};
  int64_t vocab_bound_ = 0;
  std::string vocab_bound_source_;  // what set the bound, for messages ("" : the dataset)
  // Open files, at most kMaxOpen at a time (a dataset may have thousands of shards).
  mutable std::vector<std::unique_ptr<DataFile>> open_[2];
  mutable std::deque<std::pair<int, size_t>> lru_;
  mutable std::vector<unsigned char> buf_;
};

}  // namespace longnet
