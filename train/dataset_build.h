// `longnet data build --tokenizer KIND:PATH --source PATH... --out DIR`: a corpus (train/corpus.h)
// tokenized on every core into a sharded dataset (train/dataset_manifest.h). The reader hands
// documents, in corpus order, to worker threads that each tokenize with their own clone of the
// tokenizer; results are written back in that same order, so the output does not depend on the
// number of workers. Documents are cut into units of at most 1 MiB (after the last newline in
// the second half, else at a UTF-8 boundary); unit k goes to validation when floor(k * f) steps
// (k = 0 first: about a fraction f of the text, at least one unit), so even a corpus of one
// large file has both splits. Each split is a stream with the end-of-text id (or "\n" for
// tokenizers without one) between documents and where it skips units of the other split, cut
// into shards of at most shard_bytes.
//
// Resumable: the manifest is rewritten (complete: false) after every shard, with where in the
// corpus the shard ends; rerunning the same command verifies the shards kept (size, header,
// CRC-32), drops any damaged one and what follows it, and continues from there. Atomic: shards
// are written under NAME.tmp and renamed when complete; a failing build removes its temporary
// files. An existing --out must be empty or a dataset of the same inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longnet {

struct DatasetBuildOptions {
  std::vector<std::string> sources;  // directories and files (train/corpus.h)
  std::string tokenizer = "bytes";   // a tokenizer spec (train/tokenizer.h)
  std::string out_dir;
  uint64_t shard_bytes = uint64_t{1} << 30;  // token bytes per shard, at most
  double val_fraction = 0.005;               // in [0, 1)
  std::string jsonl_field = "text";
  bool skip_bad_lines = false;  // skip and count malformed JSON lines (CorpusOptions)
  int64_t workers = 0;          // tokenizing threads; 0: one per core
  bool progress = true;         // the progress line on stderr
  bool quiet = false;           // no summary line on stdout
};

struct DatasetBuildSummary {
  bool up_to_date = false;  // nothing to do: DIR already held this dataset, intact
  bool resumed = false;     // continued an interrupted build (or repaired a damaged one)
  int64_t shards_kept = 0, shards_written = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t train_shards = 0, val_shards = 0;
  int64_t documents = 0;    // in the whole corpus
  uint64_t text_bytes = 0;  // tokenized by this run
  int64_t workers = 0;
  double seconds = 0;
};

// Builds (or finishes) the dataset. Throws std::invalid_argument for bad options and
// std::runtime_error naming the file (and line) for unreadable or malformed input, an --out that
// is a file or a non-empty directory of something else, or a write error; the shards completed
// before the error stay, listed in the manifest, for a rerun to continue from.
DatasetBuildSummary dataset_build(const DatasetBuildOptions& options);

// Whether unit k goes to validation for fraction f (the rule above).
bool dataset_unit_is_val(int64_t k, double f);

}  // namespace longnet
