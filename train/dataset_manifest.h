// The manifest of a sharded token dataset (`longnet data build`): DIR/manifest.json names the
// tokenizer, the shards of each split with their token counts and CRC-32s, and where in the
// corpus each shard ends, so that an interrupted build resumes after its last complete shard.
// Read back by training with every integer range-checked and the file's size bounded.
//
//   DIR/manifest.json          {"format": "longnet-dataset", "version": 1, "complete": true,
//                                "tokenizer": {"kind", "spec", "hash", "vocab_size", "eot_id"},
//                                "token_bytes": 2, "shard_tokens": N, "val_fraction": F,
//                                "jsonl_field": "text", "sources": [...],
//                                "corpus": {"files", "fingerprint", "documents", "units"},
//                                "splits": {"train": {"tokens", "shards": [SHARD, ...]},
//                                           "val": {...}}}
//   SHARD                      {"file": "train_000000.bin", "tokens": n, "bytes": 64 + n * w,
//                                "crc32": "1a2b3c4d" (of the bytes after the header),
//                                "end": {"file", "unit", "index", "doc", "token"},
//                                "corpus_prefix": SHA-256 of the corpus files up to end.file}
//   DIR/train_000000.bin ...   shards (train/shard_header.h), each at most shard_tokens tokens
//
// "complete": false while the build runs (training refuses such a dataset).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longnet {

constexpr int64_t kManifestVersion = 1;
// (about 250,000 shards, or fewer with long source names: data build refuses to write more)
constexpr uint64_t kManifestMaxBytes = uint64_t{64} << 20;
constexpr const char* kManifestName = "manifest.json";

// A position in the corpus stream: the build resumes from here. A unit is a document or, for a
// document longer than 1 MiB, a piece of it (train/dataset_build.h).
struct CorpusPosition {
  int64_t file = 0;   // index in the corpus's file list
  int64_t unit = 0;   // units of that file before this one
  int64_t index = 0;  // units before this one, over the whole corpus
  int64_t doc = 0;    // documents begun before this unit, over the whole corpus
  int64_t token = 0;  // tokens of this unit (its separator included) already written
};

struct ManifestShard {
  std::string file;  // a plain name inside the dataset directory
  int64_t tokens = 0;
  uint64_t bytes = 0;  // of the whole file, header included
  uint32_t crc32 = 0;  // of the token bytes
  CorpusPosition end;  // where the next shard of this split begins
  // The corpus fingerprint (below) of files [0, end.file]: a resumed build needs those unchanged
  // (later files may change: a malformed one fixed, more added).
  std::string corpus_prefix;
};

struct ManifestSplit {
  int64_t tokens = 0;  // the sum over shards
  std::vector<ManifestShard> shards;
};

struct DatasetManifest {
  bool complete = false;
  std::string tokenizer_kind, tokenizer_spec, tokenizer_hash;
  int64_t vocab_size = 0;
  int64_t eot_id = -1;  // -1: none
  int64_t token_bytes = 2;
  int64_t shard_tokens = 0;
  double val_fraction = 0;
  std::string jsonl_field = "text";
  std::vector<std::string> sources;  // as given, made absolute
  int64_t corpus_files = 0;
  std::string corpus_fingerprint;  // SHA-256 over the corpus files' names, sizes and times
  int64_t documents = 0;           // when complete
  int64_t units = 0;               // when complete
  ManifestSplit train, val;
};

// The manifest as JSON text (pretty, one shard per line).
std::string manifest_to_json(const DatasetManifest& m);

// Parses manifest text; `path` names it in messages. Throws std::runtime_error naming the file,
// the key and the value for anything malformed or out of range (counts above 2^40 tokens,
// shard byte counts that disagree with their tokens, names that leave the directory, ...).
DatasetManifest manifest_parse(const std::string& text, const std::string& path);

// DIR/manifest.json when `path` is a directory, else `path` itself.
std::string manifest_path_of(const std::string& path);

// Reads DIR/manifest.json or the manifest file itself (regular, at most kManifestMaxBytes).
DatasetManifest manifest_read(const std::string& path);

// Writes DIR/manifest.json through a temporary file and a rename. Throws naming the file.
void manifest_write(const std::string& dir, const DatasetManifest& m);

// The first difference between what two manifests were built from (tokenizer, settings,
// sources, and with `corpus` the corpus fingerprint), as "the tokenizer: X there, Y here", or ""
// when they agree.
std::string manifest_build_difference(const DatasetManifest& there, const DatasetManifest& here,
                                      bool corpus = true);

}  // namespace longnet
