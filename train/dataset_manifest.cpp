// Dataset manifests: JSON out, checked JSON in (see dataset_manifest.h).
#include "longnet/train/dataset_manifest.h"

#include "longnet/core/text.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "longnet/core/file_util.h"
#include "longnet/core/int_math.h"
#include "longnet/core/options.h"
#include "longnet/train/crc32.h"
#include "longnet/train/data_file.h"
#include "longnet/train/json_read.h"
#include "longnet/train/metrics.h"
#include "longnet/train/shard_header.h"

namespace longnet {
namespace {

constexpr int64_t kMaxShards = 1000000;
constexpr int64_t kMaxCount = int64_t{1} << 62;

// The shortest text that reads back as v.
std::string number_text(double v) {
  char buf[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string position_json(const CorpusPosition& p) {
  return "{\"file\": " + std::to_string(p.file) + ", \"unit\": " + std::to_string(p.unit) +
         ", \"index\": " + std::to_string(p.index) + ", \"doc\": " + std::to_string(p.doc) +
         ", \"token\": " + std::to_string(p.token) + "}";
}

std::string split_json(const ManifestSplit& s) {
  std::string out = "{\"tokens\": " + std::to_string(s.tokens) + ", \"shards\": [";
  for (size_t i = 0; i < s.shards.size(); ++i) {
    const auto& h = s.shards[i];
    out += (i ? ",\n      " : "\n      ");
    out += "{\"file\": " + json_quote(h.file) + ", \"tokens\": " + std::to_string(h.tokens) +
           ", \"bytes\": " + std::to_string(h.bytes) + ", \"crc32\": \"" + crc32_hex(h.crc32) +
           "\", \"end\": " + position_json(h.end) +
           ", \"corpus_prefix\": " + json_quote(h.corpus_prefix) + "}";
  }
  return out + (s.shards.empty() ? "]}" : "]}");
}

// Reads fields of one JSON object of the manifest, naming the file, the dotted key and the line.
class Reader {
 public:
  Reader(const std::string& path) : path_(path) {}

  // The dataset directory: the manifest's.
  std::string dir() const {
    const size_t slash = path_.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  }

  [[noreturn]] void fail(const JsonValue& v, const std::string& key, const std::string& msg) const {
    throw std::runtime_error("dataset manifest '" + path_ + "':" + std::to_string(v.line) + ": " +
                             key + ": " + msg + "; the manifest is damaged: remove '" + dir() +
                             "' and rebuild the dataset (rerun `longnet data build`), which does "
                             "not build onto a manifest it cannot read");
  }
  const JsonValue& member(const JsonValue& obj, const std::string& key, const std::string& dotted,
                          JsonValue::Type type) const {
    if (obj.type != JsonValue::Type::kObject) fail(obj, dotted, "is not an object");
    const JsonValue* v = obj.find(key);
    if (!v) fail(obj, dotted + "." + key, "is missing");
    if (v->type != type) {
      JsonValue want;
      want.type = type;
      fail(*v, dotted + "." + key,
           std::string("is a ") + v->type_name() + ", not a " + want.type_name());
    }
    return *v;
  }
  int64_t integer(const JsonValue& obj, const std::string& key, const std::string& dotted,
                  int64_t lo, int64_t hi) const {
    const JsonValue& v = member(obj, key, dotted, JsonValue::Type::kNumber);
    const std::string& t = v.text;
    const size_t digits_from = t[0] == '-' ? 1 : 0;
    bool whole = t.size() > digits_from && t.size() - digits_from <= 19;
    for (size_t i = digits_from; i < t.size() && whole; ++i) whole = t[i] >= '0' && t[i] <= '9';
    errno = 0;
    const long long x = whole ? std::strtoll(t.c_str(), nullptr, 10) : 0;
    if (!whole || errno == ERANGE || x < lo || x > hi)
      fail(
          v, dotted + "." + key,
          t + " is not a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
  }
  std::string text(const JsonValue& obj, const std::string& key, const std::string& dotted) const {
    return member(obj, key, dotted, JsonValue::Type::kString).text;
  }

 private:
  std::string path_;
};

bool plain_name(const std::string& s) {
  if (s.empty() || s.size() > 255 || s[0] == '.') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

CorpusPosition position_read(const Reader& r, const JsonValue& obj, const std::string& dotted) {
  const JsonValue& e = r.member(obj, "end", dotted, JsonValue::Type::kObject);
  const std::string d = dotted + ".end";
  return {r.integer(e, "file", d, 0, kMaxCount), r.integer(e, "unit", d, 0, kMaxCount),
          r.integer(e, "index", d, 0, kMaxCount), r.integer(e, "doc", d, 0, kMaxCount),
          r.integer(e, "token", d, 0, kMaxCount)};
}

ManifestSplit split_read(const Reader& r, const JsonValue& splits, const std::string& name,
                         int64_t token_bytes) {
  const std::string dotted = "splits." + name;
  const JsonValue& s = r.member(splits, name, "splits", JsonValue::Type::kObject);
  ManifestSplit out;
  out.tokens = r.integer(s, "tokens", dotted, 0, kMaxCount);
  const JsonValue& list = r.member(s, "shards", dotted, JsonValue::Type::kArray);
  if (static_cast<int64_t>(list.items.size()) > kMaxShards)
    r.fail(list, dotted + ".shards", "more than " + std::to_string(kMaxShards) + " shards");
  int64_t sum = 0;
  for (size_t i = 0; i < list.items.size(); ++i) {
    const JsonValue& js = list.items[i];
    const std::string d = dotted + ".shards[" + std::to_string(i) + "]";
    ManifestShard h;
    h.file = r.text(js, "file", d);
    if (!plain_name(h.file))
      r.fail(js, d + ".file",
             printable(h.file, 255) + " is not a plain file name inside the dataset directory");
    h.tokens = r.integer(js, "tokens", d, 0, kMaxTokens);
    h.bytes = static_cast<uint64_t>(r.integer(js, "bytes", d, 0, kMaxCount));
    // tokens <= 2^40 and token_bytes <= 4: the product fits.
    if (h.bytes != kShardHeaderBytes + static_cast<uint64_t>(h.tokens * token_bytes))
      r.fail(js, d + ".bytes",
             std::to_string(h.bytes) + " disagrees with its " + std::to_string(h.tokens) +
                 " tokens of " + std::to_string(token_bytes) + " bytes and the 64-byte header");
    const std::string crc = r.text(js, "crc32", d);
    char* end = nullptr;
    const unsigned long c = std::strtoul(crc.c_str(), &end, 16);
    if (crc.size() != 8 || end != crc.c_str() + 8)
      r.fail(js, d + ".crc32", "'" + crc + "' is not 8 hex digits");
    h.crc32 = static_cast<uint32_t>(c);
    h.end = position_read(r, js, d);
    h.corpus_prefix = r.text(js, "corpus_prefix", d);
    const auto total = add_checked(sum, h.tokens);
    if (!total) r.fail(js, d + ".tokens", "the split's total overflows");
    sum = *total;
    out.shards.push_back(std::move(h));
  }
  if (sum != out.tokens)
    r.fail(s, dotted + ".tokens",
           std::to_string(out.tokens) + " is not the sum of its shards' tokens (" +
               std::to_string(sum) + ")");
  return out;
}

}  // namespace

std::string manifest_to_json(const DatasetManifest& m) {
  std::string srcs;
  for (size_t i = 0; i < m.sources.size(); ++i) srcs += (i ? ", " : "") + json_quote(m.sources[i]);
  std::string s = "{\n";
  s += "  \"format\": \"longnet-dataset\",\n";
  s += "  \"version\": " + std::to_string(kManifestVersion) + ",\n";
  s += std::string("  \"complete\": ") + (m.complete ? "true" : "false") + ",\n";
  s += "  \"tokenizer\": {\"kind\": " + json_quote(m.tokenizer_kind) +
       ", \"spec\": " + json_quote(m.tokenizer_spec) +
       ", \"hash\": " + json_quote(m.tokenizer_hash) +
       ", \"vocab_size\": " + std::to_string(m.vocab_size) +
       ", \"eot_id\": " + (m.eot_id < 0 ? std::string("null") : std::to_string(m.eot_id)) + "},\n";
  s += "  \"token_bytes\": " + std::to_string(m.token_bytes) + ",\n";
  s += "  \"shard_tokens\": " + std::to_string(m.shard_tokens) + ",\n";
  s += "  \"val_fraction\": " + number_text(m.val_fraction) + ",\n";
  s += "  \"jsonl_field\": " + json_quote(m.jsonl_field) + ",\n";
  s += "  \"sources\": [" + srcs + "],\n";
  s += "  \"corpus\": {\"files\": " + std::to_string(m.corpus_files) +
       ", \"fingerprint\": " + json_quote(m.corpus_fingerprint) +
       ", \"documents\": " + std::to_string(m.documents) +
       ", \"units\": " + std::to_string(m.units) + "},\n";
  s += "  \"splits\": {\n    \"train\": " + split_json(m.train) +
       ",\n    \"val\": " + split_json(m.val) + "\n  }\n}\n";
  return s;
}

std::string manifest_path_of(const std::string& path) {
  struct stat st;
  const std::string name = path.substr(path.find_last_of('/') + 1);
  // (A directory named manifest.json is itself what is wrong: it is named, not looked into.)
  if (name != kManifestName && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return (path.size() > 1 && path.back() == '/' ? path.substr(0, path.size() - 1) : path) + "/" +
           kManifestName;
  return path;
}

DatasetManifest manifest_parse(const std::string& text, const std::string& path) {
  const JsonValue root = json_parse(text, "dataset manifest '" + path + "'");
  const Reader r(path);
  using T = JsonValue::Type;
  if (root.type != T::kObject) r.fail(root, "(top level)", "is not an object");
  const JsonValue* format = root.find("format");
  if (!format || format->type != T::kString || format->text != "longnet-dataset")
    throw std::runtime_error("'" + path +
                             "' is not a longnet dataset manifest (no \"format\": "
                             "\"longnet-dataset\"); make a dataset with: longnet data build "
                             "--tokenizer KIND:PATH --source PATH --out DIR");
  const int64_t version = r.integer(root, "version", "", 0, kMaxCount);
  if (version != kManifestVersion)
    throw std::runtime_error("dataset manifest '" + path + "' has version " +
                             std::to_string(version) + "; this longnet reads version " +
                             std::to_string(kManifestVersion) +
                             " (rebuild the dataset with this longnet, or update longnet)");
  DatasetManifest m;
  m.complete = r.member(root, "complete", "", T::kBool).boolean;
  const JsonValue& tok = r.member(root, "tokenizer", "", T::kObject);
  m.tokenizer_kind = r.text(tok, "kind", "tokenizer");
  m.tokenizer_spec = r.text(tok, "spec", "tokenizer");
  m.tokenizer_hash = r.text(tok, "hash", "tokenizer");
  m.vocab_size = r.integer(tok, "vocab_size", "tokenizer", 1, int64_t{UINT32_MAX});
  const JsonValue* eot = tok.find("eot_id");
  if (!eot) r.fail(tok, "tokenizer.eot_id", "is missing");
  m.eot_id =
      eot->type == T::kNull ? -1 : r.integer(tok, "eot_id", "tokenizer", 0, m.vocab_size - 1);
  m.token_bytes = r.integer(root, "token_bytes", "", 2, 4);
  if (m.token_bytes == 3 || (m.token_bytes == 2 && m.vocab_size > 65536))
    r.fail(root, "token_bytes",
           std::to_string(m.token_bytes) + " bytes cannot hold a vocabulary of " +
               std::to_string(m.vocab_size));
  m.shard_tokens = r.integer(root, "shard_tokens", "", 1, kMaxTokens);
  const JsonValue& vf = r.member(root, "val_fraction", "", T::kNumber);
  m.val_fraction = std::strtod(vf.text.c_str(), nullptr);
  if (!(m.val_fraction >= 0 && m.val_fraction < 1))
    r.fail(vf, "val_fraction", vf.text + " is not in [0, 1)");
  m.jsonl_field = r.text(root, "jsonl_field", "");
  const JsonValue& srcs = r.member(root, "sources", "", T::kArray);
  for (const auto& s : srcs.items) {
    if (s.type != T::kString) r.fail(s, "sources", "holds a non-string");
    m.sources.push_back(s.text);
  }
  const JsonValue& corpus = r.member(root, "corpus", "", T::kObject);
  m.corpus_files = r.integer(corpus, "files", "corpus", 0, kMaxCount);
  m.corpus_fingerprint = r.text(corpus, "fingerprint", "corpus");
  m.documents = r.integer(corpus, "documents", "corpus", 0, kMaxCount);
  m.units = r.integer(corpus, "units", "corpus", 0, kMaxCount);
  const JsonValue& splits = r.member(root, "splits", "", T::kObject);
  m.train = split_read(r, splits, "train", m.token_bytes);
  m.val = split_read(r, splits, "val", m.token_bytes);
  for (const auto* split : {&m.train, &m.val})
    for (const auto& h : split->shards)
      if (h.tokens > m.shard_tokens)
        r.fail(splits, "splits",
               "shard '" + h.file + "' has " + std::to_string(h.tokens) +
                   " tokens, more than shard_tokens " + std::to_string(m.shard_tokens));
  return m;
}

DatasetManifest manifest_read(const std::string& path) {
  const std::string file = manifest_path_of(path);
  return manifest_parse(data_file_read_small(file, "dataset manifest", kManifestMaxBytes), file);
}

void manifest_write(const std::string& dir, const DatasetManifest& m) {
  const std::string path = dir + "/" + kManifestName, json = manifest_to_json(m);
  // Never a manifest the reader refuses: the build would succeed and its dataset be unusable.
  if (json.size() > kManifestMaxBytes)
    throw std::runtime_error(
        "data build: the manifest of " +
        std::to_string(m.train.shards.size() + m.val.shards.size()) + " shards and " +
        std::to_string(m.sources.size()) + " sources would be " + std::to_string(json.size()) +
        " bytes, more than the " + std::to_string(kManifestMaxBytes) +
        " a manifest may have: give a larger --shard-mb (fewer shards), or fewer --source paths "
        "(a directory instead of its files)");
  try {
    // (MANIFEST.tmp: the one temporary name a later build recognises as its own leftover)
    file_write_atomic(path, {{json.data(), json.size()}}, path + ".tmp");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("data build: ") + e.what());
  }
}

std::string manifest_build_difference(const DatasetManifest& there, const DatasetManifest& here,
                                      bool corpus) {
  auto differ = [](const std::string& what, const std::string& a, const std::string& b) {
    return a == b ? std::string() : what + ": " + a + " there, " + b + " here";
  };
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
    return s;
  };
  for (const std::string& d :
       {differ("the sources", list(there.sources), list(here.sources)),
        differ("the tokenizer", there.tokenizer_hash, here.tokenizer_hash),
        differ("--shard-mb (tokens per shard)", std::to_string(there.shard_tokens),
               std::to_string(here.shard_tokens)),
        differ("--val-fraction", number_text(there.val_fraction), number_text(here.val_fraction)),
        differ("--jsonl-field", there.jsonl_field, here.jsonl_field),
        corpus ? differ("the corpus files (their names, sizes and times; or a build by an earlier "
                        "longnet version, which cut long texts elsewhere)",
                        std::to_string(there.corpus_files) + " files " +
                            there.corpus_fingerprint.substr(0, 12),
                        std::to_string(here.corpus_files) + " files " +
                            here.corpus_fingerprint.substr(0, 12))
               : std::string()})
    if (!d.empty()) return d;
  return "";
}

}  // namespace longnet
