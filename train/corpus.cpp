// Corpus sources -> documents (see corpus.h). Files are listed first (cheap: names and sizes),
// then read one at a time through input_stream.h, so memory stays near max_document_bytes
// whatever the corpus size.
#include "longnet/train/corpus.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <set>
#include <stdexcept>

#include "longnet/core/text.h"
#include "longnet/train/json_read.h"
#include "longnet/train/tokenizer.h"

#include "longnet/longnet_tokenizer_config.h"

#if LONGNET_WITH_JSON
#include <nlohmann/json.hpp>
#endif

namespace longnet {
namespace {

constexpr size_t kReadBlock = 256 << 10;
// Said with a malformed JSON line's error.
constexpr const char* kSkipHint = " (--skip-bad-lines skips such lines)";

CorpusFile file_describe(const std::string& path, const std::string& name, uint64_t bytes,
                         bool in_directory) {
  CorpusFile f;
  f.path = path;
  f.name = name;
  f.bytes = bytes;
  f.in_directory = in_directory;
  f.compression = compression_from_name(path);
  f.format = ends_with_nocase(path, ".jsonl") || ends_with_nocase(path, ".jsonl.gz") ||
                     ends_with_nocase(path, ".jsonl.zst")
                 ? CorpusFormat::kJsonl
                 : CorpusFormat::kText;
  return f;
}

// Regular files below `dir` (links skipped, never followed). POSIX calls rather than
// std::filesystem, for the reason given in core/file_util.h.
void walk(const std::string& dir, const std::string& rel, std::vector<CorpusFile>& out,
          CorpusSummary& skipped) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    throw std::runtime_error("corpus: cannot read the directory '" + printable_text(dir) +
                             "': " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const auto& name : names) {
    const std::string path = dir + "/" + name, r = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    errno = ENAMETOOLONG;
    const int rc = path.size() < PATH_MAX ? ::lstat(path.c_str(), &st) : -1;
    if (rc != 0 && errno == ENAMETOOLONG) {
      ++skipped.long_paths;  // (a tree nested deeper than a path can name)
      continue;
    }
    if (rc != 0)
      throw std::runtime_error("corpus: cannot stat '" + printable_text(path) +
                               "': " + std::strerror(errno));
    if (S_ISLNK(st.st_mode)) {
      ++skipped.links;
    } else if (S_ISDIR(st.st_mode)) {
      walk(path, r, out, skipped);
    } else if (S_ISREG(st.st_mode)) {
      out.push_back(file_describe(path, r, static_cast<uint64_t>(st.st_size), true));
    } else {
      ++skipped.special_files;  // a FIFO would block the read, a device never end
    }
  }
}

#if LONGNET_WITH_JSON
// A JSON line as the strict reader (json_read.h) parses it, reduced to what the corpus reads:
// an object holding the text field, or the field's kind when it is not a string.
nlohmann::json strict_jsonl_line(const std::string& line, const std::string& where,
                                 const std::string& field) {
  JsonValue v;
  JsonParseOptions o;
  o.duplicate_keys = true;  // as nlohmann-json takes them (the text field's are counted below)
  o.max_depth = 1000;
  try {
    v = json_parse(line, where, o);
  } catch (const std::exception& e) {
    // "WHERE:1:COL: not valid JSON: ..." for the one line: its column, under the file's line.
    std::string what = e.what();
    const std::string head = where + ":1:";
    if (what.rfind(head, 0) == 0) {
      const size_t colon = what.find(':', head.size());
      what =
          where + ": column " + what.substr(head.size(), colon - head.size()) + what.substr(colon);
    }
    throw std::runtime_error("corpus: " + what);
  }
  if (v.type != JsonValue::Type::kObject)
    throw std::runtime_error("corpus: " + where + ": a JSON " + v.type_name() +
                             ", not an object; each line must be an object with a \"" +
                             printable_text(field) + "\" string");
  nlohmann::json out = nlohmann::json::object();
  int text_keys = 0;
  for (const auto& [key, value] : v.members) {
    if (key == field && ++text_keys > 1)
      throw std::runtime_error("corpus: " + where + ": the field \"" + printable_text(field) +
                               "\" appears more than once in one object; JSON would keep only "
                               "one of them");
    if (value.type == JsonValue::Type::kString)
      out[key] = value.text;
    else if (key == field)
      throw std::runtime_error("corpus: " + where + ": field \"" + printable_text(field) +
                               "\" is a JSON " + value.type_name() + ", not a string");
    else
      out[key] = nullptr;  // not read
  }
  return out;
}

// nlohmann-json's message about a line, without its "[json.exception.parse_error.101] " tag and
// with the bytes it quotes from the line made printable.
std::string json_error_text(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (what.rfind("[json.exception.", 0) == 0 && what.find("] ") != std::string::npos)
    what.erase(0, what.find("] ") + 2);
  return "not valid JSON: " + printable_text(what);
}

const char* json_type(const nlohmann::json& j) {
  return j.type_name();
}

// The text of one JSON line (not blank) into `text`; false with `problem` said when the line is
// malformed: a NUL byte, not valid JSON, not an object, the text field missing, twice or not a
// string.
bool jsonl_text(const std::string& line, const std::string& where, const std::string& field,
                std::string& text, std::string& problem) {
  // (the JSON parser would stop at it and take the line's head for the whole line)
  if (const size_t z = line.find('\0'); z != std::string::npos) {
    problem = "a NUL byte at column " + std::to_string(z + 1) +
              "; JSON lines hold none (is the file binary, or damaged?)";
    return false;
  }
  nlohmann::json j;
  // The text field given twice in one object: JSON keeps one of them silently (as a config
  // refuses a duplicate key, so does the corpus).
  int text_keys = 0;
  auto count_text_keys = [&](int depth, nlohmann::json::parse_event_t event,
                             nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed == field) ++text_keys;
    return true;
  };
  try {
    j = nlohmann::json::parse(line, count_text_keys);
  } catch (const nlohmann::json::out_of_range& e) {
    if (e.id != 406) {
      problem = json_error_text(e);
      return false;
    }
    // A number past double's range (1e99999), which JSON allows and nlohmann-json refuses, even
    // in a field never read: the strict reader keeps numbers as their text.
    try {
      j = strict_jsonl_line(line, where, field);
    } catch (const std::runtime_error& e2) {
      problem = e2.what();
      const std::string prefix = "corpus: " + where + ": ";  // (said again by the caller)
      if (problem.rfind(prefix, 0) == 0) problem.erase(0, prefix.size());
      return false;
    }
  } catch (const nlohmann::json::exception& e) {
    problem = json_error_text(e);
    // Objects parted by a bare CR: a file of old-Mac line ends, which JSON Lines does not use.
    const size_t cr = line.find('\r');
    if (cr != std::string::npos && cr + 1 < line.size() && line[cr + 1] != '\n')
      problem +=
          " (the line holds a carriage return (CR) inside it: the file ends its lines "
          "with CR alone, which JSON Lines does not; convert it, e.g. tr '\\r' '\\n')";
    return false;
  }
  if (text_keys > 1) {
    problem = "the field \"" + printable_text(field) + "\" appears " + std::to_string(text_keys) +
              " times in one object; JSON would keep only one of them";
    return false;
  }
  if (!j.is_object()) {
    problem = std::string("a JSON ") + json_type(j) +
              ", not an object; each line must be an object with a \"" + printable_text(field) +
              "\" string";
    return false;
  }
  auto it = j.find(field);
  if (it == j.end()) {
    std::string keys;
    int shown = 0;
    for (auto k = j.begin(); k != j.end() && shown < 8; ++k, ++shown)
      keys += (shown ? ", " : "") + ("'" + printable_text(k.key()) + "'");
    problem = "no field \"" + printable_text(field) +
              "\" (fields: " + (keys.empty() ? "none" : keys) +
              "); choose the text field with --jsonl-field";
    return false;
  }
  if (!it->is_string()) {
    problem = "field \"" + printable_text(field) + "\" is a JSON " + std::string(json_type(*it)) +
              ", not a string";
    return false;
  }
  text = std::move(it->get_ref<std::string&>());
  return true;
}
#endif

// A file of text in UTF-16 or UTF-32 (wide_text_encoding): what to convert it with.
std::runtime_error wide_text_error(const CorpusFile& f, const char* encoding) {
  return std::runtime_error("corpus: '" + printable_text(f.path) + "' looks like " + encoding +
                            " text (NUL bytes between its letters); convert it to UTF-8 first, "
                            "e.g. iconv -f " +
                            encoding + " -t UTF-8" +
                            (f.in_directory ? ", and move the original out of the directory" : ""));
}

}  // namespace

std::vector<CorpusFile> corpus_files(const std::vector<std::string>& sources,
                                     const CorpusOptions& options, CorpusSummary* skipped) {
  if (sources.empty())
    throw std::invalid_argument(
        "corpus: no sources given; give directories or files of text "
        "(.txt, .jsonl, .gz, .zst)");
  CorpusSummary local;
  CorpusSummary& sk = skipped ? *skipped : local;
  std::vector<CorpusFile> files;
  for (const auto& src : sources) {
    struct stat st;
    if (::stat(src.c_str(), &st) != 0)
      throw std::runtime_error("corpus: source '" + src + "' " +
                               (errno == ENOENT
                                    ? std::string("does not exist")
                                    : "cannot be read: " + std::string(std::strerror(errno))));
    if (S_ISDIR(st.st_mode)) {
      std::vector<CorpusFile> found;
      const CorpusSummary before = sk;
      walk(src, "", found, sk);
      // Directory order is unspecified; sorting makes the corpus a function of the contents.
      std::sort(found.begin(), found.end(),
                [](const CorpusFile& a, const CorpusFile& b) { return a.name < b.name; });
      if (found.empty()) {
        // What the walk passed over, so that a directory of links or FIFOs is not a mystery.
        std::vector<std::string> passed;
        if (const int64_t n = sk.links - before.links)
          passed.push_back(std::to_string(n) +
                           " link(s), not followed in directories (give a link's target as a "
                           "--source)");
        if (const int64_t n = sk.special_files - before.special_files)
          passed.push_back(std::to_string(n) + " FIFO(s), socket(s) or device(s)");
        if (const int64_t n = sk.long_paths - before.long_paths)
          passed.push_back(std::to_string(n) + " path(s) nested past PATH_MAX");
        throw std::runtime_error(
            "corpus: directory '" + src + "' holds no regular files" +
            (passed.empty() ? std::string() : " (passed over: " + join(passed, ", ") + ")"));
      }
      for (auto& f : found) {
        if (f.compression == Compression::kNone && f.format == CorpusFormat::kText &&
            f.bytes > options.max_directory_file_bytes) {
          ++sk.large_files;
          continue;
        }
        files.push_back(std::move(f));
      }
    } else if (S_ISREG(st.st_mode)) {
      files.push_back(file_describe(src, src, static_cast<uint64_t>(st.st_size), false));
    } else {
      throw std::runtime_error("corpus: source '" + src +
                               "' is neither a directory nor a regular file");
    }
  }
  // Overlapping sources (a directory and a file in it, a link to a directory also given, the
  // same source twice) would read a file twice: its text could then sit in both splits.
  std::set<std::pair<dev_t, ino_t>> seen;
  std::vector<CorpusFile> unique;
  unique.reserve(files.size());
  for (auto& f : files) {
    struct stat st;
    // (inode 0: a file system without stable inode numbers; nothing to compare)
    if (::stat(f.path.c_str(), &st) == 0 && st.st_ino != 0 &&
        !seen.insert({st.st_dev, st.st_ino}).second) {
      ++sk.duplicate_files;
      continue;
    }
    unique.push_back(std::move(f));
  }
  return unique;
}

// The file being read.
struct CorpusReader::Open {
  const CorpusFile* file = nullptr;
  std::unique_ptr<InputStream> stream;
  bool eof = false;
  uint64_t text_read = 0;  // bytes of (decompressed) text read so far
  bool first_part = true;
  std::string carry;  // text read past the end of the last part
  // JSON Lines
  std::vector<char> buf;
  size_t pos = 0, len = 0;
  int64_t line = 0;
  std::string line_text;
};

CorpusReader::CorpusReader(const std::vector<std::string>& sources, CorpusOptions options)
    : options_(std::move(options)) {
  files_ = corpus_files(sources, options_, &summary_);
}

CorpusReader::CorpusReader(std::vector<CorpusFile> files, CorpusOptions options)
    : files_(std::move(files)), options_(std::move(options)) {}

CorpusReader::~CorpusReader() = default;

uint64_t CorpusReader::file_bytes_read() const {
  return open_ && open_->stream ? open_->stream->consumed() : 0;
}

bool CorpusReader::open_next_file() {
  if (options_.max_document_bytes < 16)
    throw std::invalid_argument("corpus: max_document_bytes " +
                                std::to_string(options_.max_document_bytes) +
                                " is too small (the default is 64 MiB)");
  if (next_file_ >= files_.size()) return false;
  const CorpusFile& f = files_[next_file_++];
#if !LONGNET_WITH_JSON
  if (f.format == CorpusFormat::kJsonl)
    throw std::runtime_error("'" + printable_text(f.path) +
                             "': this build cannot read JSON Lines: install nlohmann-json3-dev "
                             "and reconfigure");
#endif
  open_ = std::make_unique<Open>();
  open_->file = &f;
  open_->stream = input_stream_open(f.path, f.compression);
  // Its size as listed (what a dataset's fingerprint of its sources records), unless something
  // changed it since: then the text read would not be what the fingerprint says.
  struct stat st;
  if (f.bytes > 0 && ::stat(f.path.c_str(), &st) == 0 && uint64_t(st.st_size) != f.bytes)
    throw std::runtime_error("corpus: '" + printable_text(f.path) +
                             "' changed since the sources were listed (" + std::to_string(f.bytes) +
                             " bytes then, " + std::to_string(st.st_size) +
                             " now): something writes to it; read it when it is not being "
                             "changed, or copy it first");
  ++summary_.files;
  return true;
}

bool CorpusReader::next(Document& doc) {
  for (;;) {
    if (!open_ && !open_next_file()) return false;
    const bool got = open_->file->format == CorpusFormat::kJsonl ? next_jsonl(doc) : next_text(doc);
    if (got) {
      if (doc.continued) {
        ++summary_.parts;
      } else {
        ++summary_.documents;
      }
      summary_.text_bytes += doc.text.size();
      return true;
    }
    open_.reset();
  }
}

bool CorpusReader::next_text(Document& doc) {
  Open& o = *open_;
  const CorpusFile& f = *o.file;
  const size_t max = options_.max_document_bytes;
  doc.text.swap(o.carry);
  o.carry.clear();
  // Read until more than one part is held, or the end.
  while (!o.eof && doc.text.size() <= max) {
    const size_t at = doc.text.size();
    doc.text.resize(at + std::min(kReadBlock, max + 1 - at));
    const size_t n = o.stream->read(&doc.text[at], doc.text.size() - at);
    doc.text.resize(at + n);
    if (n == 0) o.eof = true;
    // Text holds no NUL byte anywhere (a text head before binary data, a file with a hole of
    // zeros): a file in a directory walk is skipped as binary while none of it was returned;
    // otherwise it is an error, never tokenized.
    if (const char* z = n ? static_cast<const char*>(std::memchr(&doc.text[at], 0, n)) : nullptr) {
      const uint64_t byte = o.text_read + static_cast<uint64_t>(z - &doc.text[at]);
      const char* wide = o.text_read == 0 && at == 0
                             ? wide_text_encoding(std::string_view(doc.text.data(), n))
                             : nullptr;
      if (f.in_directory && o.first_part) {
        ++summary_.binary_files;
        if (wide) ++summary_.wide_text_files;
        return false;
      }
      if (wide) throw wide_text_error(f, wide);
      throw std::runtime_error("corpus: '" + printable_text(f.path) +
                               "' looks binary (a NUL byte at byte " + std::to_string(byte) +
                               " of its text" + (o.first_part ? "" : ", after text already read") +
                               "); give text, JSON Lines (.jsonl) or their .gz / .zst forms" +
                               (f.in_directory ? ", and move it out of the directory" : ""));
    }
    o.text_read += n;
  }
  // A byte-order mark at the start of a text file is an editor's mark, not text (as in JSON
  // Lines and prompt files).
  if (o.first_part && doc.text.rfind("\xEF\xBB\xBF", 0) == 0) doc.text.erase(0, 3);
  if (doc.text.empty()) {
    if (o.first_part) ++summary_.empty_files;
    return false;
  }
  if (doc.text.size() > max) {
    // Cut where the tokenizer splits anyway, as data build cuts its pieces (tokenizer.h).
    const size_t cut = options_.cut_by ? options_.cut_by->piece_length(doc.text, max)
                                       : text_piece_length(doc.text, 0, max);
    o.carry.assign(doc.text, cut, std::string::npos);
    doc.text.resize(cut);
  }
  doc.where = printable_text(f.path);
  doc.continued = !o.first_part;
  o.first_part = false;
  return true;
}

bool CorpusReader::next_jsonl(Document& doc) {
#if !LONGNET_WITH_JSON
  return false;
#else
  Open& o = *open_;
  const CorpusFile& f = *o.file;
  const size_t max = options_.max_document_bytes;
  if (o.buf.empty()) o.buf.resize(kReadBlock);
  std::string& line = o.line_text;
  for (;;) {
    // One line (without its '\n'); false at the end of the file.
    line.clear();
    bool have = false;
    for (;;) {
      if (o.pos == o.len) {
        if (o.eof) break;
        o.len = o.stream->read(o.buf.data(), o.buf.size());
        o.pos = 0;
        if (o.len == 0) {
          o.eof = true;
          break;
        }
        // Text in UTF-16 or UTF-32 (blank lines first or not): named by its encoding, from the
        // file's first bytes, not as the invalid JSON its first line would be.
        if (o.text_read == 0)
          if (const char* wide = wide_text_encoding(std::string_view(o.buf.data(), o.len)))
            throw wide_text_error(f, wide);
        o.text_read += o.len;
      }
      const char* start = o.buf.data() + o.pos;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', o.len - o.pos));
      const size_t take = nl ? static_cast<size_t>(nl - start) : o.len - o.pos;
      if (line.size() + take > max)
        throw std::runtime_error("corpus: " + printable_text(f.path) + ":" +
                                 std::to_string(o.line + 1) + ": a JSON line longer than " +
                                 std::to_string(max) +
                                 " bytes, past what one line may hold; split the document "
                                 "over several lines");
      line.append(start, take);
      have = true;
      o.pos += take;
      if (nl) {
        ++o.pos;
        break;
      }
    }
    if (!have) return false;
    ++o.line;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // A byte-order mark before the first line (a BOM-only first line is blank too).
    if (o.line == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = printable_text(f.path) + ":" + std::to_string(o.line);  // (shown)
    // A malformed line ends the read, or with skip_bad_lines is counted and skipped.
    std::string problem;
    if (!jsonl_text(line, where, options_.jsonl_field, doc.text, problem)) {
      if (!options_.skip_bad_lines)
        throw std::runtime_error("corpus: " + where + ": " + problem + kSkipHint);
      if (summary_.bad_lines++ == 0) summary_.first_bad_line = where + ": " + problem;
      continue;
    }
    if (doc.text.empty()) {
      ++summary_.empty_documents;
      continue;
    }
    doc.where = where;
    doc.continued = false;
    return true;
  }
#endif
}

void corpus_tokenize(CorpusReader& reader, const Tokenizer& tokenizer,
                     const std::function<void(const std::vector<uint32_t>& ids)>& sink) {
  const std::vector<uint32_t> separator = document_separator(tokenizer);
  std::vector<uint32_t> ids;
  Document doc;
  bool first = true;
  while (reader.next(doc)) {
    ids.clear();
    if (!first && !doc.continued) ids = separator;
    tokenizer.encode_piece(doc.text, doc.continued, ids);
    sink(ids);
    first = false;
  }
}

}  // namespace longnet
