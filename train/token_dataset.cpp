// Reading token datasets (see token_dataset.h): opening and checking each format, then pread of
// the requested tokens with a bounded set of open files.
#include "longnet/train/token_dataset.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "longnet/train/crc32.h"
#include "longnet/train/data_file.h"
#include "longnet/train/shard_header.h"
#include "longnet/train/token_header.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token files are little-endian");

namespace longnet {
namespace {

constexpr size_t kMaxOpen = 64;

const char* kFormats = "auto, longnet, nanogpt or legacy";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The first min(n, size) bytes of a regular file.
std::vector<unsigned char> head_read(const std::string& path, const std::string& what, size_t n) {
  DataFile f(path, what);
  std::vector<unsigned char> b(std::min<uint64_t>(n, f.size()));
  f.read_exact(0, b.data(), b.size());
  return b;
}

// The regular files in dir whose name ends in `suffix`, sorted by name.
std::vector<std::string> dir_files(const std::string& dir, const std::string& suffix) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    throw std::runtime_error("data.path '" + dir +
                             "': cannot read the directory: " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    // (hidden files, such as macOS's ._NAME.bin metadata, are no shards)
    if (n[0] != '.' && ends_with(n, suffix)) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string what_make() {
  return "; make a dataset with: longnet data build --tokenizer KIND:PATH --source PATH --out DIR "
         "(or the byte file of: longnet data build SRC_DIR OUT)";
}

}  // namespace

const char* split_name(DataSplit s) {
  return s == DataSplit::kTrain ? "training" : "validation";
}

TokenDataset::~TokenDataset() = default;

std::unique_ptr<TokenDataset> TokenDataset::open(const std::string& path, const std::string& format,
                                                 bool need_val, bool need_train) {
  if (format != "auto" && format != "longnet" && format != "nanogpt" && format != "legacy")
    throw std::invalid_argument("data.format '" + format + "' is not one of " + kFormats);
  std::unique_ptr<TokenDataset> d(new TokenDataset());
  d->path_ = path;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ELOOP)
      throw std::runtime_error("data.path '" + path +
                               "' is a symbolic link that leads back to itself (a loop); point "
                               "it at the dataset");
    char target[4096];
    const ssize_t n = err == ENOENT ? ::readlink(path.c_str(), target, sizeof(target) - 1) : -1;
    if (n >= 0)
      throw std::runtime_error("data.path '" + path + "' is a symbolic link to '" +
                               std::string(target, size_t(n)) +
                               "', which does not exist (a moved dataset or an unmounted "
                               "volume?); point it at the dataset");
    if (err != ENOENT)
      throw std::runtime_error("data.path '" + path + "': cannot read it (" + std::strerror(err) +
                               ")");
    throw std::runtime_error("data.path '" + path + "' does not exist" + what_make());
  }
  std::string kind = format;
  if (S_ISDIR(st.st_mode)) {
    if (format == "legacy")
      throw std::runtime_error("data.path '" + path +
                               "' is a directory; data.format legacy reads one token file (made "
                               "by longnet data build SRC_DIR OUT)");
    const std::string manifest = manifest_path_of(path);
    struct stat ms;
    const bool has_manifest = ::lstat(manifest.c_str(), &ms) == 0;
    if (kind == "auto") {
      if (has_manifest) {
        kind = "longnet";
      } else if (const auto bins = dir_files(path, ".bin"); !bins.empty()) {
        const auto head = head_read(path + "/" + bins.front(), "data.path", 8);
        if (shard_magic(head.data(), head.size()))
          throw std::runtime_error("data.path '" + path + "' holds longnet shards (" +
                                   bins.front() +
                                   ") but no manifest.json, which a longnet dataset needs (it "
                                   "was deleted, or the build never finished): build the dataset "
                                   "again with longnet data build into an empty --out");
        kind = "nanogpt";
      } else {
        throw std::runtime_error("data.path '" + path +
                                 "' is a directory holding neither manifest.json (a longnet "
                                 "dataset) nor .bin shards (llm.c / nanoGPT)" +
                                 what_make());
      }
    }
    if (kind == "longnet" && !has_manifest) {
      const auto bins = dir_files(path, ".bin");
      if (!bins.empty()) {
        const auto head = head_read(path + "/" + bins.front(), "data.path", 8);
        if (llmc_magic(head.data(), head.size()))
          throw std::runtime_error("data.path '" + path + "' holds llm.c / nanoGPT shards (" +
                                   bins.front() +
                                   "), not a longnet dataset (no manifest.json), but "
                                   "data.format is longnet; set data.format: nanogpt (or auto)");
      }
    }
    if (kind == "longnet") {
      d->open_longnet(manifest);
    } else {
      d->open_nanogpt(path);
    }
  } else {
    if (format == "nanogpt")
      throw std::runtime_error("data.path '" + path +
                               "' is not a directory; data.format nanogpt reads a directory of "
                               ".bin shards (names holding 'val' are the validation split)");
    // Refuses FIFOs, devices and sockets before opening them.
    const uint64_t size = data_file_check(path, "data.path", what_make());
    if (size == 0) throw std::runtime_error("token file '" + path + "' is empty" + what_make());
    if (kind == "auto") {
      const auto head = head_read(path, "data.path", 1024);
      size_t i = 0;
      while (i < head.size() && std::strchr(" \t\r\n", head[i]) && head[i]) ++i;
      if (i < head.size() && head[i] == '{') {
        kind = "longnet";
      } else if (llmc_magic(head.data(), head.size())) {
        throw std::runtime_error("data.path '" + path +
                                 "' is one llm.c / nanoGPT shard; give the directory that holds "
                                 "its training and validation shards (data.format nanogpt)");
      } else if (shard_magic(head.data(), head.size())) {
        const size_t slash = path.find_last_of('/');
        throw std::runtime_error(
            "data.path '" + path +
            "' is one shard of a longnet dataset; give the dataset's directory (the one holding "
            "its manifest.json" +
            (slash == std::string::npos ? std::string() : ": " + path.substr(0, slash)) + ")");
      } else {
        kind = "legacy";  // its header check names anything else
      }
    }
    if (kind == "longnet") {
      const auto head = head_read(path, "data.path", 64);
      if (token_file_magic(head.data(), head.size()))
        throw std::runtime_error("data.path '" + path +
                                 "' is a byte-token file (made by longnet data build SRC_DIR OUT), "
                                 "not a dataset manifest: read it with data.format legacy or auto");
      d->open_longnet(path);
    } else {
      d->open_legacy(path);
    }
  }
  if (d->tokens_[0] == 0 && need_train)
    throw std::runtime_error("dataset '" + path +
                             "' has an empty training split; build it from a larger corpus (or a "
                             "smaller --val-fraction)");
  if (d->tokens_[1] == 0 && need_val)
    throw std::runtime_error(
        "dataset '" + path +
        "' has an empty validation split (built with --val-fraction 0, or from too little text "
        "for one); set eval.interval: 0 to train without evaluation, or rebuild it with a "
        "--val-fraction above 0 (e.g. 0.01)");
  return d;
}

void TokenDataset::add_shard(DataSplit s, Shard shard) {
  const int i = static_cast<int>(s);
  starts_[i].push_back(tokens_[i]);
  tokens_[i] += shard.tokens;  // each <= 2^40 tokens, at most 10^6 shards: no overflow
  shards_[i].push_back(std::move(shard));
  open_[i].emplace_back();
}

void TokenDataset::open_longnet(const std::string& manifest_file) {
  format_ = "longnet";
  manifest_ = std::make_unique<DatasetManifest>(manifest_read(manifest_file));
  const DatasetManifest& m = *manifest_;
  const std::string dir = manifest_file.find('/') == std::string::npos
                              ? std::string(".")
                              : manifest_file.substr(0, manifest_file.rfind('/'));
  if (!m.complete)
    throw std::runtime_error("dataset '" + dir +
                             "' is incomplete: its build was interrupted (or is still running); "
                             "rerun the same `longnet data build` command to finish it");
  vocab_bound_ = m.vocab_size;
  for (int si = 0; si < 2; ++si) {
    const ManifestSplit& split = si == 0 ? m.train : m.val;
    for (size_t k = 0; k < split.shards.size(); ++k) {
      const ManifestShard& ms = split.shards[k];
      Shard sh;
      sh.path = dir + "/" + ms.file;
      const uint64_t size = data_file_check(sh.path, "shard", "; rebuild the dataset");
      if (size != ms.bytes)
        throw std::runtime_error("shard '" + sh.path + "' has " + std::to_string(size) +
                                 " bytes but the manifest says " + std::to_string(ms.bytes) +
                                 ": it changed since the dataset was built; rebuild the dataset "
                                 "(rerun the same `longnet data build`)");
      const auto head = head_read(sh.path, "shard", kShardHeaderBytes);
      const ShardHeader h = shard_header_check(head.data(), head.size(), size, sh.path);
      if (h.tokens != static_cast<uint64_t>(ms.tokens) ||
          h.token_bytes != static_cast<uint32_t>(m.token_bytes) ||
          h.vocab_size != static_cast<uint64_t>(m.vocab_size) ||
          h.split != static_cast<uint32_t>(si) || h.index != k)
        throw std::runtime_error(
            "shard '" + sh.path + "': its header (" + std::to_string(h.tokens) + " tokens of " +
            std::to_string(h.token_bytes) + " bytes, vocabulary " + std::to_string(h.vocab_size) +
            ", split " + std::to_string(h.split) + " shard " + std::to_string(h.index) +
            ") disagrees with the manifest; the dataset is damaged: rebuild it");
      sh.data_offset = kShardHeaderBytes;
      sh.tokens = ms.tokens;
      sh.width = h.token_bytes;
      sh.file_size = size;
      sh.has_crc = true;
      sh.crc = ms.crc32;
      add_shard(static_cast<DataSplit>(si), std::move(sh));
    }
  }
}

// Whether a llm.c / nanoGPT shard name is a validation file's: "val", "valid", "validation" or
// "eval" as a word of it, between non-letters (val.bin, fineweb_val_000000.bin, shard_val0.bin),
// not inside a word (medieval_train_000001.bin).
static bool nanogpt_is_validation(const std::string& name) {
  auto letter = [&](size_t i) {
    return i < name.size() && std::isalpha(static_cast<unsigned char>(name[i])) != 0;
  };
  for (const std::string w : {"val", "valid", "validation", "eval"})
    for (size_t at = name.find(w); at != std::string::npos; at = name.find(w, at + 1))
      if ((at == 0 || !letter(at - 1)) && !letter(at + w.size())) return true;
  return false;
}

void TokenDataset::open_nanogpt(const std::string& dir) {
  format_ = "nanogpt";
  const auto names = dir_files(dir, ".bin");
  uint32_t widest = 0;
  for (const auto& name : names) {
    Shard sh;
    sh.path = dir + "/" + name;
    const uint64_t size = data_file_check(sh.path, "llm.c shard");
    const auto head = head_read(sh.path, "llm.c shard", kLlmcHeaderBytes);
    // nanoGPT's prepare.py writes train.bin and val.bin as bare uint16 tokens, no header: read
    // so under those names alone (an llm.c shard, whose header a damaged magic would otherwise
    // turn into tokens, is never named so).
    if ((name == "train.bin" || name == "val.bin") && !llmc_magic(head.data(), head.size())) {
      if (size % 2 != 0)
        throw std::runtime_error("nanoGPT file '" + sh.path +
                                 "' (no llm.c header: bare uint16 "
                                 "tokens, as nanoGPT's prepare.py writes) has an odd size of " +
                                 std::to_string(size) +
                                 " bytes; it is cut short or not a token file");
      sh.data_offset = 0;
      sh.tokens = static_cast<int64_t>(size / 2);
      sh.width = 2;
    } else {
      const LlmcHeader h = llmc_header_check(head.data(), head.size(), size, sh.path);
      sh.data_offset = kLlmcHeaderBytes;
      sh.tokens = static_cast<int64_t>(h.tokens);
      sh.width = h.token_bytes;
    }
    sh.file_size = size;
    widest = std::max(widest, sh.width);
    if (sh.tokens > 0)
      add_shard(nanogpt_is_validation(name) ? DataSplit::kVal : DataSplit::kTrain, std::move(sh));
  }
  if (shards_[0].empty() || shards_[1].empty())
    throw std::runtime_error("data.path '" + dir + "' holds " + std::to_string(shards_[0].size()) +
                             " training and " + std::to_string(shards_[1].size()) +
                             " validation .bin shards (with tokens); llm.c / nanoGPT datasets need "
                             "both (a validation file has 'val', 'valid', 'validation' or "
                             "'eval' as a word of its name: val.bin, fineweb_val_000000.bin)");
  vocab_bound_ = widest == 2 ? 65536 : int64_t{1} << 32;
  vocab_bound_source_ = "what its ids' width holds";
}

void TokenDataset::open_legacy(const std::string& file) {
  format_ = "legacy";
  const uint64_t size = data_file_check(file, "token file", what_make());
  const auto head = head_read(file, "token file", kTokenHeaderBytes);
  const TokenCounts c = token_header_check(head.data(), static_cast<size_t>(size), file);
  for (int si = 0; si < 2; ++si) {
    Shard sh;
    sh.path = file;
    sh.data_offset = kTokenHeaderBytes + (si == 0 ? 0 : c.train);
    sh.tokens = static_cast<int64_t>(si == 0 ? c.train : c.val);
    sh.width = 1;
    sh.file_size = size;
    add_shard(static_cast<DataSplit>(si), std::move(sh));
  }
  vocab_bound_ = kTokenVocabSize;
}

int64_t TokenDataset::tokens(DataSplit s) const {
  return tokens_[static_cast<int>(s)];
}

std::vector<std::string> TokenDataset::files(DataSplit s) const {
  std::vector<std::string> out;
  for (const auto& sh : shards_[static_cast<int>(s)]) out.push_back(sh.path);
  return out;
}

void TokenDataset::set_vocab_bound(int64_t bound, const std::string& source) {
  if (bound < 1) throw std::invalid_argument("TokenDataset: vocabulary bound must be >= 1");
  vocab_bound_ = bound;
  vocab_bound_source_ = source;
}

void TokenDataset::bound_ids_by_model(int64_t model_vocab) {
  if (format_ == "nanogpt" && model_vocab < vocab_bound_)
    set_vocab_bound(model_vocab, "model.vocab_size");
}

const DataFile& TokenDataset::file_of(DataSplit s, size_t i) const {
  const int si = static_cast<int>(s);
  auto& slot = open_[si][i];
  if (slot) return *slot;
  const Shard& sh = shards_[si][i];
  auto f = std::make_unique<DataFile>(sh.path, format_ == "legacy" ? "token file" : "shard");
  if (f->size() < sh.file_size)
    throw std::runtime_error(f->what() + " '" + sh.path + "' has " + std::to_string(f->size()) +
                             " bytes now, fewer than the " + std::to_string(sh.file_size) +
                             " it had when training started: it shrank while in use; restore "
                             "it (or rebuild the dataset) and resume from the last checkpoint");
  if (lru_.size() >= kMaxOpen) {
    const auto [os, oi] = lru_.front();
    lru_.pop_front();
    open_[os][oi].reset();
  }
  lru_.emplace_back(si, i);
  slot = std::move(f);
  return *slot;
}

void TokenDataset::read_piece(DataSplit s, size_t i, int64_t offset, int64_t count,
                              int64_t* out) const {
  const Shard& sh = shards_[static_cast<int>(s)][i];
  const DataFile& f = file_of(s, i);
  const size_t bytes = static_cast<size_t>(count) * sh.width;
  if (buf_.size() < bytes) buf_.resize(bytes);
  f.read_exact(sh.data_offset + static_cast<uint64_t>(offset) * sh.width, buf_.data(), bytes);
  uint64_t top = 0;
  if (sh.width == 1) {
    for (int64_t k = 0; k < count; ++k) top = std::max<uint64_t>(top, out[k] = buf_[k]);
  } else if (sh.width == 2) {
    for (int64_t k = 0; k < count; ++k) {
      uint16_t v;
      std::memcpy(&v, buf_.data() + 2 * k, 2);
      top = std::max<uint64_t>(top, out[k] = v);
    }
  } else {
    for (int64_t k = 0; k < count; ++k) {
      uint32_t v;
      std::memcpy(&v, buf_.data() + 4 * k, 4);
      top = std::max<uint64_t>(top, out[k] = v);
    }
  }
  if (top < static_cast<uint64_t>(vocab_bound_)) return;
  int64_t k = 0;
  while (out[k] < vocab_bound_) ++k;
  throw std::runtime_error(std::string(format_ == "legacy" ? "token file" : "shard") + " '" +
                           sh.path + "': token " + std::to_string(offset + k) + " is " +
                           std::to_string(out[k]) + ", not below the vocabulary " +
                           std::to_string(vocab_bound_) +
                           (vocab_bound_source_.empty() ? std::string(" of the dataset")
                                                        : " (" + vocab_bound_source_ + ")") +
                           ": the file is corrupt or was made with another tokenizer; rebuild it");
}

void TokenDataset::read(DataSplit s, int64_t start, int64_t count, int64_t* out) const {
  const int si = static_cast<int>(s);
  if (start < 0 || count < 0 || start > tokens_[si] - count)
    throw std::out_of_range("TokenDataset::read: tokens [" + std::to_string(start) + ", " +
                            std::to_string(start + count) + ") are outside the " + split_name(s) +
                            " split of " + std::to_string(tokens_[si]) + " tokens");
  const auto& starts = starts_[si];
  size_t i =
      static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), start) - starts.begin()) -
      1;
  while (count > 0) {
    const int64_t offset = start - starts[i];
    const int64_t n = std::min(count, shards_[si][i].tokens - offset);
    if (n > 0) {
      read_piece(s, i, offset, n, out);
      out += n;
      start += n;
      count -= n;
    }
    ++i;
  }
}

int64_t TokenDataset::shard_count() const {
  return static_cast<int64_t>(shards_[0].size() + shards_[1].size());
}

const std::string& TokenDataset::shard_path(int64_t index) const {
  const size_t n0 = shards_[0].size();
  return static_cast<size_t>(index) < n0 ? shards_[0][index].path : shards_[1][index - n0].path;
}

std::string TokenDataset::ids_check(DataSplit s, size_t i) const {
  // read_piece checks the ids it reads against vocab_bound_ and names the first one past it.
  constexpr int64_t kPiece = int64_t{1} << 20;
  const int64_t tokens = shards_[static_cast<int>(s)][i].tokens;
  std::vector<int64_t> ids(static_cast<size_t>(std::min(kPiece, tokens)));
  try {
    for (int64_t at = 0; at < tokens; at += kPiece)
      read_piece(s, i, at, std::min(kPiece, tokens - at), ids.data());
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

std::pair<int64_t, std::string> TokenDataset::verify_checksums(
    int rank, int world, std::optional<DataSplit> only) const {
  int64_t index = 0;
  for (int si = 0; si < 2; ++si) {
    const bool wanted = !only || si == static_cast<int>(*only);
    for (size_t i = 0; i < shards_[si].size(); ++i) {
      const Shard& sh = shards_[si][i];
      const int64_t g = index++;
      if (!wanted || g % world != rank) continue;
      if (!sh.has_crc) {
        if (format_ == "nanogpt")
          if (std::string why = ids_check(static_cast<DataSplit>(si), i); !why.empty())
            return {g, why};
        continue;
      }
      const uint32_t crc = data_file_crc32(DataFile(sh.path, "shard"), sh.data_offset,
                                           static_cast<uint64_t>(sh.tokens) * sh.width);
      if (crc != sh.crc)
        return {g, "shard '" + sh.path + "' is corrupt: its CRC-32 is " + crc32_hex(crc) +
                       " but the manifest says " + crc32_hex(sh.crc) +
                       "; rerun the same `longnet data build` command: it verifies every shard "
                       "and rebuilds from the first damaged one"};
    }
  }
  return {-1, ""};
}

std::string TokenDataset::summary() const {
  std::string s = format_ + " dataset '" + path_ + "': ";
  for (int si = 0; si < 2; ++si)
    s += (si ? ", " : "") + std::to_string(tokens_[si]) + " " +
         split_name(static_cast<DataSplit>(si)) + " tokens in " +
         std::to_string(shards_[si].size()) + (format_ == "legacy" ? " part" : " shard(s)");
  s += ", ids below " + std::to_string(vocab_bound_);
  if (manifest_) s += ", tokenizer " + manifest_->tokenizer_spec;
  return s;
}

}  // namespace longnet
