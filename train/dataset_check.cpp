// Config against dataset (see dataset_check.h).
#include "longnet/train/dataset_check.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <stdexcept>

#include "longnet/core/file_util.h"
#include "longnet/train/crc32.h"
#include "longnet/train/data_file.h"
#include "longnet/train/dataset_manifest.h"
#include "longnet/train/sha256.h"
#include "longnet/train/token_dataset.h"
#include "longnet/train/tokenizer.h"

namespace longnet {
namespace {

std::string kind_of(const std::string& spec) {
  return spec.substr(0, spec.find(':'));
}

// The first n bytes of the regular file at path (fewer when it is shorter).
std::string head_of(const std::string& path, size_t n) {
  const int fd = file_open_regular(path, "data.path", nullptr);
  std::string h(n, '\0');
  const ssize_t r = ::pread(fd, h.data(), n, 0);
  ::close(fd);
  h.resize(r > 0 ? static_cast<size_t>(r) : 0);
  return h;
}

std::string where(const TrainConfig& c, const std::string& key) {
  auto it = c.origin.find(key);
  return it == c.origin.end() ? "default" : it->second;
}

}  // namespace

std::string tokenizer_spec_hash(const std::string& spec) {
  const std::string kind = kind_of(spec);
  if (kind == "bytes" || tokenizer_kind_available(kind))
    return tokenizer_open(spec)->content_hash();
  if (kind != "tiktoken" && kind != "sentencepiece") return tokenizer_open(spec)->content_hash();
  // This build lacks the kind's library: the hash of the file is all a comparison needs.
  return tokenizer_file_hash(spec);
}

std::string tokenizer_file_hash(const std::string& spec) {
  const std::string kind = kind_of(spec);
  if (spec.find(':') == std::string::npos)
    throw std::invalid_argument("tokenizer '" + spec + "' names no file (KIND:PATH)");
  const std::string path = spec.substr(spec.find(':') + 1);
  DataFile f(path, kind + " tokenizer file");
  Sha256 h;
  std::vector<unsigned char> block(size_t{1} << 20);
  for (uint64_t at = 0; at < f.size();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), f.size() - at));
    f.read_exact(at, block.data(), n);
    h.update(block.data(), n);
    at += n;
  }
  return kind + ":" + h.hex_digest();
}

RecordedTokenizer config_data_tokenizer(const TrainConfig& c) {
  const DataConfig& d = c.data;
  std::optional<DatasetManifest> m;
  if (d.format != "legacy" && d.format != "nanogpt" && !d.path.empty()) {
    try {
      const PathKind kind = path_kind(d.path);
      bool manifest = kind == PathKind::kDirectory;
      if (kind == PathKind::kFile) {  // a manifest.json given as the path, or a byte-token file
        const std::string head = head_of(d.path, 256);
        const size_t i = head.find_first_not_of(" \t\r\n");
        manifest = i != std::string::npos && head[i] == '{';
        if (!manifest && d.tokenizer.empty()) return {"bytes", "bytes"};
      }
      if (manifest) m = manifest_read(d.path);
    } catch (const std::exception&) {
      // llm.c shards, or not a dataset of ours: nothing recorded
    }
  } else if (d.format == "legacy" && d.tokenizer.empty()) {
    return {"bytes", "bytes"};
  }
  if (!d.tokenizer.empty()) {
    // Training checked data.tokenizer against this manifest's hash, when it is the same dataset.
    return {tokenizer_spec_absolute(d.tokenizer), m ? m->tokenizer_hash : ""};
  }
  if (m) return {m->tokenizer_spec, m->tokenizer_hash};
  return {};
}

std::string recorded_hash(const RecordedTokenizer& t) {
  if (!t.hash.empty() || t.spec.empty()) return t.hash;
  try {
    return tokenizer_spec_hash(t.spec);
  } catch (const std::exception&) {
    return "";  // the file is not here
  }
}

std::optional<bool> tokenizers_same(const RecordedTokenizer& a, const RecordedTokenizer& b) {
  const std::string ha = recorded_hash(a), hb = recorded_hash(b);
  if (ha.empty() || hb.empty()) return std::nullopt;
  return ha == hb;
}

void manifest_vocab_check(const DatasetManifest& m, const std::string& dataset,
                          const std::string& spec) {
  std::string matched = !spec.empty() ? spec : m.tokenizer_spec;
  if (spec.empty() && kind_of(matched) != "bytes") {
    std::string now;
    try {
      now = tokenizer_file_hash(matched);
    } catch (const std::exception&) {
    }
    if (now != m.tokenizer_hash) return;  // (not here, or changed: nothing to compare with)
  }
  if (kind_of(matched) != "bytes" && !tokenizer_kind_available(kind_of(matched))) return;
  const auto tok = tokenizer_open(matched);
  const int64_t eot = tok->eot_id() ? int64_t(*tok->eot_id()) : -1;
  if (int64_t(tok->vocab_size()) != m.vocab_size || eot != m.eot_id)
    throw std::runtime_error(dataset + ": its manifest records vocabulary " +
                             std::to_string(m.vocab_size) + " and end-of-text id " +
                             std::to_string(m.eot_id) + ", but its tokenizer '" + matched +
                             "' (the same file, by its hash) has " +
                             std::to_string(tok->vocab_size()) + " and " + std::to_string(eot) +
                             ": the manifest was edited. Rebuild the dataset (longnet data build)");
}

std::string dataset_config_check(const TrainConfig& c, TokenDataset& data) {
  const std::string& spec = c.data.tokenizer;
  const std::string dataset = data.format() + " dataset '" + data.path() + "'";
  if (const DatasetManifest* m = data.manifest()) {
    std::string how;
    if (!spec.empty()) {
      const std::string hash = tokenizer_spec_hash(spec);
      // The same file, changed since the build (e.g. another `tokenizer train --out` onto it).
      if (hash != m->tokenizer_hash && tokenizer_spec_absolute(spec) == m->tokenizer_spec)
        config_fail(c, "data.tokenizer",
                    "'" + spec + "' is the file " + dataset +
                        " was built with, but its contents changed since (now " + hash +
                        ", recorded " + m->tokenizer_hash +
                        "): its ids would mean other text. Restore that file (or give a copy of "
                        "it), or rebuild the dataset with the file as it is now");
      if (hash != m->tokenizer_hash)
        config_fail(c, "data.tokenizer",
                    "'" + spec + "' (" + hash + ") is not the tokenizer " + dataset +
                        " was built with: its manifest records '" + m->tokenizer_spec + "' (" +
                        m->tokenizer_hash + "); set data.tokenizer: " + m->tokenizer_spec +
                        " (or a copy of that file), leave it empty (data.tokenizer: \"\", or "
                        "data.tokenizer='\"\"' as an override), or rebuild the dataset "
                        "with this tokenizer");
      how = tokenizer_kind_available(kind_of(spec)) || kind_of(spec) == "bytes"
                ? ", matches data.tokenizer"
                : ", matches data.tokenizer by file hash (this build lacks the " + kind_of(spec) +
                      " library; reading shards needs none)";
    }
    if (m->tokenizer_kind != kind_of(m->tokenizer_spec))
      throw std::runtime_error(dataset + ": its manifest records tokenizer kind '" +
                               m->tokenizer_kind + "' but the tokenizer '" + m->tokenizer_spec +
                               "' (the manifest was edited): rebuild the dataset");
    // The tokenizer file the dataset was made with: training reads only the shards, but
    // generate and eval decode with that file, and refuse it when it is gone or changed.
    if (spec.empty() && kind_of(m->tokenizer_spec) != "bytes") {
      std::string now;
      try {
        now = tokenizer_file_hash(m->tokenizer_spec);
      } catch (const std::exception& e) {
        std::string why = e.what();
        how = "; warning: its tokenizer file is not readable here (" +
              why.substr(0, why.find('\n')) +
              "): training reads only the shards, but generate and eval need that file";
      }
      if (!now.empty() && now != m->tokenizer_hash)
        how = "; warning: its tokenizer file changed since the build (now " + now +
              "): training reads only the shards, but generate and eval will refuse the file "
              "as it is; restore it";
    }
    manifest_vocab_check(*m, dataset, spec);
    config_check_vocab(c, m->vocab_size,
                       "the vocabulary of " + dataset + " (tokenizer " + m->tokenizer_spec + ")");
    return "data: tokenizer " + m->tokenizer_spec + " (" + m->tokenizer_hash + ", vocabulary " +
           std::to_string(m->vocab_size) + ")" + how;
  }
  if (data.format() == "legacy") {
    if (!spec.empty() && spec != "bytes")
      config_fail(c, "data.tokenizer",
                  "'" + spec + "' cannot have made " + dataset +
                      ": a byte-token file holds the bytes of its text (tokenizer bytes); leave "
                      "data.tokenizer empty, or build a dataset with it: longnet data build "
                      "--tokenizer " +
                      spec + " --source SRC --out DIR");
    config_check_vocab(c, 256, "the 256 byte values of " + dataset);
    return "data: byte tokens (vocabulary 256)";
  }
  // llm.c / nanoGPT shards record no tokenizer: the model's vocabulary bounds the ids read.
  data.bound_ids_by_model(c.model.vocab_size);
  std::string note = "data: llm.c shards record no tokenizer; ids must be below model.vocab_size " +
                     std::to_string(c.model.vocab_size) + " (" + where(c, "model.vocab_size") + ")";
  if (!spec.empty() && (kind_of(spec) == "bytes" || tokenizer_kind_available(kind_of(spec)))) {
    const int64_t v = tokenizer_open(spec)->vocab_size();
    config_check_vocab(c, v, "the vocabulary of data.tokenizer '" + spec + "'");
    if (v < data.vocab_bound())
      data.set_vocab_bound(v, "the vocabulary of data.tokenizer '" + spec + "'");
    note = "data: llm.c shards record no tokenizer; ids must be below " + std::to_string(v) +
           " (data.tokenizer " + spec + ")";
  }
  return note;
}

uint32_t tokens_sampled_crc(int64_t size, const std::function<at::Tensor(int64_t, int64_t)>& read) {
  uint32_t crc = 0;
  const int64_t span = std::min<int64_t>(4096, size), spans = 16;
  for (int64_t i = 0; i < spans && span > 0; ++i) {
    const auto t = read((size - span) * i / (spans - 1), span).contiguous();
    crc = crc32_update(crc, t.data_ptr(), t.nbytes());
  }
  return crc;
}

}  // namespace longnet
