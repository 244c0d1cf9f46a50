// Byte-level training data, the first format (data.format legacy): `longnet data build SRC_DIR
// OUT` turns any directory of text or code into one token file (vocabulary 256, one byte per
// token, no download). Training reads it through train/token_dataset.h, like the sharded
// datasets of train/dataset_build.h.
//
// File layout (integers little-endian):
//   offset  0  char[8]  "LNTOKENS"
//           8  u32      format version (1)
//          12  u32      vocabulary size (256)
//          16  u32      bytes per token (1)
//          20  u32      header size (64)
//          24  u64      training tokens T
//          32  u64      validation tokens V
//          40  zeros up to 64
//          64  T training tokens, then V validation tokens
#pragma once

#include <cstdint>
#include <string>

namespace longnet {

struct DataBuildSummary {
  int64_t text_files = 0;     // files taken
  int64_t binary_files = 0;   // skipped: a NUL byte in the first 8 KiB
  int64_t large_files = 0;    // skipped: larger than 16 MiB
  int64_t other_skipped = 0;  // skipped: empty or unreadable
  int64_t train_files = 0, val_files = 0;
  int64_t train_tokens = 0, val_tokens = 0;
};

// Builds a token file from every text-like regular file under src_dir (sorted walk, symlinks
// skipped), files joined by '\n'. A file goes to validation when a hash of its relative path
// falls below val_fraction (in [0, 1)); with two or more files, at least one goes to each
// split. Writes out_path + ".tmp", then renames. Prints a one-line summary. Throws
// std::runtime_error when src_dir is missing, not a directory, or has no text files.
DataBuildSummary data_build(const std::string& src_dir, const std::string& out_path,
                            double val_fraction = 0.005);

}  // namespace longnet
