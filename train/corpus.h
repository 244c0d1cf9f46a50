// Corpus input: the documents of a list of sources, read as streams in bounded memory, for
// tokenizing (`data build`) and tokenizer training. A source is
//   a directory   every file below it, sorted by relative path, links skipped (never followed);
//                 plain files that look binary (a NUL byte, after decompression) or are
//                 larger than 16 MiB are skipped, as `data build` does (a NUL byte after a
//                 part of the file was returned is an error: text was already read)
//   a file        by name: *.jsonl, *.jsonl.gz, *.jsonl.zst are JSON Lines, one document per line
//                 in the field CorpusOptions::jsonl_field (a line that is not JSON, not an object,
//                 lacks the field or whose field is not a string is an error naming file:line);
//                 other *.gz and *.zst files are compressed text; anything else is text.
//                 A text file (plain or compressed) is one document.
// Files inside directories follow the same naming rules. A text document longer than
// CorpusOptions::max_document_bytes comes in parts of at most that size (cut where the tokenizers
// split anyway, as text_piece_length in tokenizer.h), marked `continued`; a JSON
// line longer than it is an error. Empty documents are skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "longnet/train/input_stream.h"

namespace longnet {

class Tokenizer;

enum class CorpusFormat { kText, kJsonl };

struct CorpusOptions {
  std::string jsonl_field = "text";
  size_t max_document_bytes = size_t{64} << 20;
  uint64_t max_directory_file_bytes = uint64_t{16} << 20;  // plain files in a walk
  // A malformed JSON line (invalid JSON, not an object, the text field missing, twice or not a
  // string, a NUL byte) is skipped and counted instead of ending the read.
  bool skip_bad_lines = false;
  // Where a document longer than max_document_bytes is cut: this tokenizer's piece_length (so
  // that its parts tokenize as the whole does), else text_piece_length. Used on the reading
  // thread only.
  const Tokenizer* cut_by = nullptr;
};

struct CorpusFile {
  std::string path;  // as opened
  std::string name;  // relative to its directory source, else the path given
  CorpusFormat format = CorpusFormat::kText;
  Compression compression = Compression::kNone;
  bool in_directory = false;  // found by a walk: binary and large files are skipped, not errors
  uint64_t bytes = 0;         // size on disk
};

struct CorpusSummary {
  int64_t files = 0;            // files read (or being read)
  int64_t documents = 0;        // documents returned (a document in parts counts once)
  int64_t parts = 0;            // extra parts of documents longer than max_document_bytes
  int64_t empty_documents = 0;  // skipped
  int64_t bad_lines = 0;        // malformed JSON lines skipped (CorpusOptions::skip_bad_lines)
  std::string first_bad_line;   // the first one's "file:line: problem"
  int64_t binary_files = 0, large_files = 0, empty_files = 0, links = 0;  // skipped
  int64_t wide_text_files = 0;  // of binary_files: UTF-16 or UTF-32 text (text.h)
  int64_t special_files = 0;    // skipped in directories: FIFOs, sockets, devices (never opened)
  int64_t long_paths = 0;  // skipped in directories: paths past PATH_MAX (no call can open them)
  // Skipped: files reached a second time (sources that overlap, one naming a file inside another
  // or a link to it; hard links), read once so that no text lands in both splits.
  int64_t duplicate_files = 0;
  uint64_t text_bytes = 0;  // bytes of document text returned
};

// The files of `sources` in reading order (sources in the order given). Throws
// std::runtime_error naming a source that does not exist or cannot be read, and when a
// directory holds no file at all. Links and, with `skipped`, large files are counted there; a file
// reached twice (the same device and inode) is kept once, at its first place, and counted.
std::vector<CorpusFile> corpus_files(const std::vector<std::string>& sources,
                                     const CorpusOptions& options,
                                     CorpusSummary* skipped = nullptr);

struct Document {
  std::string text;
  std::string where;       // "path" for a text file, "path:LINE" for a JSON line
  bool continued = false;  // a later part of the previous document
};

class CorpusReader {
 public:
  CorpusReader(const std::vector<std::string>& sources, CorpusOptions options = {});
  CorpusReader(std::vector<CorpusFile> files, CorpusOptions options);
  ~CorpusReader();
  CorpusReader(const CorpusReader&) = delete;
  CorpusReader& operator=(const CorpusReader&) = delete;

  // The next document (or part), false at the end. Throws std::runtime_error naming the file
  // (and line) for malformed input: bad JSON lines, truncated or corrupt compressed files, an
  // explicitly named file that looks binary.
  bool next(Document& doc);
  const CorpusSummary& summary() const { return summary_; }
  // Bytes of the file being read (on disk: compressed where it is) read so far; 0 between files.
  uint64_t file_bytes_read() const;
  const std::vector<CorpusFile>& files() const { return files_; }

 private:
  struct Open;
  bool open_next_file();
  bool next_text(Document& doc);
  bool next_jsonl(Document& doc);

  std::vector<CorpusFile> files_;
  CorpusOptions options_;
  CorpusSummary summary_;
  size_t next_file_ = 0;
  std::unique_ptr<Open> open_;
};

// Tokenizes every document of `reader`, with the end-of-text id between documents (for a
// tokenizer without one, such as `bytes`, the ids of "\n", as `data build` joins files), and
// hands the ids to `sink` a document (part) at a time; the parts of one document are encoded
// separately and follow each other with nothing between them.
void corpus_tokenize(CorpusReader& reader, const Tokenizer& tokenizer,
                     const std::function<void(const std::vector<uint32_t>& ids)>& sink);

}  // namespace longnet
