// safetensors and config.json export (see model_export.h).
#include "longnet/train/model_export.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/train/checkpoint_files.h"
#include "longnet/train/config.h"
#include "longnet/train/dataset_check.h"
#include "longnet/train/json_read.h"
#include "longnet/train/metrics.h"
#include "longnet/train/model_load.h"

namespace longnet {
namespace {

const char* safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return "F64";
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    case at::kShort:
      return "I16";
    case at::kChar:
      return "I8";
    case at::kByte:
      return "U8";
    case at::kBool:
      return "BOOL";
    default:
      return nullptr;
  }
}

std::string number_json(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";  // keep it a float
  return s;
}

// Visits LongNetLMOptions into JSON members.
class JsonVisitor : public OptionVisitor {
 public:
  std::string body;
  void field(const char* n, int64_t& v, const OptionSpec&) override { add(n, std::to_string(v)); }
  void field(const char* n, double& v, const OptionSpec&) override { add(n, number_json(v)); }
  void field(const char* n, bool& v, const OptionSpec&) override { add(n, v ? "true" : "false"); }
  void field(const char* n, std::string& v, const OptionSpec&) override { add(n, json_quote(v)); }
  void field(const char* n, std::vector<int64_t>& v, const OptionSpec&) override {
    std::string s;
    for (auto x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
    add(n, "[" + s + "]");
  }
  void field(const char* n, std::vector<double>& v, const OptionSpec&) override {
    std::string s;
    for (auto x : v) s += (s.empty() ? "" : ", ") + number_json(x);
    add(n, "[" + s + "]");
  }

 private:
  void add(const char* name, const std::string& value) {
    body += (body.empty() ? "" : ",\n") + std::string("    ") + json_quote(name) + ": " + value;
  }
};

// Whether the regular file at path is a safetensors file a longnet export wrote: its header's
// __metadata__ names the checkpoint ("longnet_checkpoint"). Anything unreadable or malformed is
// not.
bool safetensors_from_longnet(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  auto read_all = [fd](void* dst, size_t n) {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::read(fd, p, n);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      p += got, n -= size_t(got);
    }
    return true;
  };
  unsigned char len[8];
  bool mine = false;
  if (read_all(len, 8)) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | len[i];
    std::string header;
    if (n >= 2 && n <= (uint64_t{1} << 24)) {
      header.resize(size_t(n));
      if (read_all(header.data(), header.size())) {
        try {
          const JsonValue v = json_parse(header, path);
          const JsonValue* meta = v.find("__metadata__");
          const JsonValue* ckpt = meta ? meta->find("longnet_checkpoint") : nullptr;
          mine = ckpt && ckpt->type == JsonValue::Type::kString;
        } catch (const std::runtime_error&) {
        }
      }
    }
  }
  ::close(fd);
  return mine;
}

struct ExportTokenizer {
  std::string json;     // config.json's "tokenizer" object
  std::string file;     // the copy's name in the export ("" when none is copied)
  std::string content;  // its bytes
  std::string note;     // what the user should know ("" when the tokenizer is all there)
  std::string source;   // the model's own tokenizer file the copy is read from, if it is
};

// {"kind": K, "spec": as recorded, "hash": its content hash (KIND:SHA-256), "file": the copy};
// kind null when nothing names one (llm.c shards, or a dataset no longer at hand). Only
// SentencePiece and tiktoken tokenizers have a file (bytes and bytes:eot are built in); it is
// copied when it is here and is the one the model was trained with (by content hash, checked
// before and after it is read). When that file is gone or changed, a copy already in out_dir
// (an earlier export's) with the recorded hash is kept and named.
ExportTokenizer export_tokenizer(const RecordedTokenizer& recorded, const std::string& out_dir) {
  ExportTokenizer t;
  const std::string& spec = recorded.spec;
  if (spec.empty()) {
    t.json = "{\"kind\": null}";
    t.note =
        "neither the checkpoint nor its training data (pre-tokenized shards, or not at hand) "
        "names a tokenizer; config.json names none";
    return t;
  }
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  t.json = "{\"kind\": " + json_quote(kind) + ", \"spec\": " + json_quote(valid_utf8(spec));
  if (kind != "sentencepiece" && kind != "tiktoken") {
    t.json += "}";
    return t;
  }
  const std::string path = spec.substr(colon + 1);
  if (!recorded.hash.empty()) t.json += ", \"hash\": " + json_quote(recorded.hash);
  const std::string copy_name = kind == "tiktoken" ? "tokenizer.tiktoken" : "tokenizer.model";
  const std::string copy_path = out_dir + "/" + copy_name;
  const auto now = [&] { return recorded_hash({spec, ""}); };  // "" when not readable
  const std::string before = now();
  const bool stale = before.empty() || (!recorded.hash.empty() && before != recorded.hash);
  if (stale && !recorded.hash.empty() && path_kind(copy_path) == PathKind::kFile &&
      recorded_hash({kind + ":" + copy_path, ""}) == recorded.hash) {
    t.content = file_read_bounded(copy_path, kind + " tokenizer file", uint64_t{1} << 30);
    if (recorded_hash({kind + ":" + copy_path, ""}) != recorded.hash)
      throw std::runtime_error("export: the tokenizer file " + copy_path +
                               " changed while it was read; run the export again");
    t.file = copy_name;
    t.json += ", \"file\": " + json_quote(t.file) + "}";
    t.note = "the tokenizer file " + path +
             " is gone or no longer the one the model was trained with; the copy already in " +
             out_dir + " is that tokenizer (by its hash) and was kept";
    return t;
  }
  if (before.empty()) {
    t.note = "the tokenizer file " + path + " is not here, so it was not copied (config.json " +
             "names it" + (recorded.hash.empty() ? "" : " and its hash") + ")";
  } else if (!recorded.hash.empty() && before != recorded.hash) {
    t.note = "the tokenizer file " + path +
             " is no longer the one the model was trained with, so it was not copied "
             "(config.json names it and its hash)";
  } else {
    t.content = file_read_bounded(path, kind + " tokenizer file", uint64_t{1} << 30);
    t.source = path;
    if (now() != before)
      throw std::runtime_error("export: the tokenizer file " + path +
                               " changed while it was read; run the export again");
    t.file = copy_name;
    t.json += ", \"file\": " + json_quote(t.file);
    if (recorded.hash.empty())
      t.note = "the checkpoint records no hash of its tokenizer, so the copy of " + path +
               " is that file as it is now";
  }
  t.json += "}";
  return t;
}

}  // namespace

void safetensors_write(const std::string& path,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> data;
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      // (valid UTF-8: the safetensors readers refuse anything else, also json_quote's \udcXX)
      header += (first ? "" : ",") + json_quote(k) + ":" + json_quote(valid_utf8(v));
      first = false;
    }
    header += "}";
  }
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const char* dtype = safetensors_dtype(t.scalar_type());
    if (dtype == nullptr)
      throw std::invalid_argument("safetensors: tensor '" + name + "' has dtype " +
                                  std::string(c10::toString(t.scalar_type())) +
                                  ", which the format does not hold");
    if (name.empty() || name == "__metadata__")
      throw std::invalid_argument("safetensors: '" + name + "' is not a tensor name");
    auto c = t.detach().cpu().contiguous();
    std::string shape;
    for (int64_t s : c.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(s);
    const int64_t bytes = static_cast<int64_t>(c.nbytes());
    header += std::string(header.size() > 1 ? "," : "") + json_quote(name) + ":{\"dtype\":\"" +
              dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(offset) +
              "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
    data.push_back(c);
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  const uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  std::vector<std::pair<const char*, size_t>> parts{{reinterpret_cast<const char*>(len), 8},
                                                    {header.data(), header.size()}};
  for (const auto& t : data) parts.emplace_back(static_cast<const char*>(t.data_ptr()), t.nbytes());
  file_write_atomic(path, parts);
}

std::string lm_options_json(const LongNetLMOptions& o_in) {
  LongNetLMOptions o = o_in;
  JsonVisitor v;
  options_visit(o, v);
  return "{\n" + v.body + "\n  }";
}

ExportSummary checkpoint_export(const std::string& checkpoint, const std::string& out_dir,
                                const std::string& dtype) {
  at::ScalarType cast = at::kFloat;
  if (!dtype.empty()) {
    if (dtype == "float32")
      cast = at::kFloat;
    else if (dtype == "bfloat16")
      cast = at::kBFloat16;
    else if (dtype == "float16")
      cast = at::kHalf;
    else
      throw std::invalid_argument("export: dtype '" + dtype +
                                  "' is not float32, bfloat16 or float16");
  }
  // Loaded as generate and eval load it: every entry, the config and each parameter (name,
  // shape, floating point, finite) checked against the model the config builds.
  ModelLoadOptions lo;
  lo.checkpoint = checkpoint;
  lo.not_a_checkpoint_hint =
      "export reads a trainer checkpoint (runs/NAME/checkpoints/step_*.ckpt), which carries the "
      "model's config; a parameters file has none to export";
  const LoadedModel loaded = model_load(lo);
  if (loaded.step < 0)
    throw std::runtime_error("checkpoint '" + checkpoint +
                             "' has no step entry: not written by longnet train");
  const TrainConfig& config = loaded.config;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  ExportSummary s;
  s.step = loaded.step;
  at::NoGradGuard no_grad;
  for (const auto& p : loaded.model->named_parameters()) {
    const std::string& name = p.key();
    at::Tensor t = p.value().detach();
    // Finite values past the range of the dtype asked for (float16's 65,504) are refused: the
    // export would hold infinities with no sign of them.
    if (!dtype.empty()) {
      if (const auto most = dtype_overflow(t, cast))
        throw std::runtime_error(
            "export: parameter '" + name + "' holds values up to " + c10::str(*most) +
            " in absolute value, past the range of " + dtype + " (whose largest is " +
            (cast == at::kHalf ? "65504" : "~3.4e38") + "); export as " +
            (cast == at::kHalf ? "bfloat16 or float32" : "float32") + ". Nothing was written");
      t = t.to(cast);
    }
    tensors.emplace_back(name, t);
    s.bytes += static_cast<int64_t>(t.nbytes());
  }
  s.tensors = static_cast<int64_t>(tensors.size());
  const bool dir_existed = path_kind(out_dir) != PathKind::kMissing;
  // An export gets a directory of its own: not a checkpoint dir (retention and resumes read it)
  // nor a dataset (its manifest lists the files that belong there).
  if (path_kind(out_dir) == PathKind::kDirectory) {
    if (!checkpoint_list(out_dir).empty())
      throw std::invalid_argument("longnet export --out '" + out_dir +
                                  "' holds training checkpoints (step_*.ckpt): give the export "
                                  "a directory of its own. Nothing was written");
    if (path_kind(out_dir + "/manifest.json") != PathKind::kMissing)
      throw std::invalid_argument("longnet export --out '" + out_dir +
                                  "' holds a dataset (manifest.json): give the export a "
                                  "directory of its own. Nothing was written");
  }
  // The tokenizer the model's data was made with goes along: named in config.json, and its file
  // copied beside the model when it is here and is that tokenizer (by content hash).
  const ExportTokenizer tok = export_tokenizer(model_tokenizer(loaded), out_dir);
  output_dir_prepare(out_dir, "export directory");
  // One export at a time writes a directory (two could pair one's config.json with the other's
  // weights): an advisory lock on the directory itself, released when this returns or the
  // process ends, and no file of its own left there.
  struct DirLock {
    int fd = -1;
    ~DirLock() {
      if (fd >= 0) ::close(fd);
    }
  } dir_lock;
  dir_lock.fd = ::open(out_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_lock.fd < 0)
    throw std::runtime_error("export: cannot open --out '" + out_dir +
                             "': " + std::strerror(errno) + ". Nothing was written");
  // (a file system without locks, as some network ones: the export goes on unlocked)
  if (::flock(dir_lock.fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK)
    throw std::runtime_error("export: --out '" + out_dir +
                             "' is being written by another export (it holds the directory's "
                             "lock); wait for it, or give another --out. Nothing was written");
  // A previous export here is replaced; files of anything else are not.
  const std::string cfg_path = out_dir + "/config.json", st_path = out_dir + "/model.safetensors";
  // Ours: a JSON object whose "architecture" and "format" are the ones written below (a file
  // that merely mentions them, or is not JSON, is another tool's); with the tokenizer file it
  // names, if any (only that one is ours to replace or remove).
  std::string old_tok_file;
  const bool ours = [&] {
    if (path_kind(cfg_path) != PathKind::kFile) return false;
    try {
      const JsonValue v =
          json_parse(file_read_bounded(cfg_path, "export config", 1 << 20), cfg_path);
      const JsonValue* arch = v.find("architecture");
      const JsonValue* format = v.find("format");
      const bool mine =
          arch && arch->type == JsonValue::Type::kString && arch->text == "LongNetLM" && format &&
          format->type == JsonValue::Type::kString && format->text == "longnet-export-1";
      const JsonValue* t = v.find("tokenizer");
      const JsonValue* f = t && t->type == JsonValue::Type::kObject ? t->find("file") : nullptr;
      if (mine && f && f->type == JsonValue::Type::kString &&
          (f->text == "tokenizer.model" || f->text == "tokenizer.tiktoken"))
        old_tok_file = f->text;
      return mine;
    } catch (const std::runtime_error&) {
      return false;
    }
  }();
  // And each file on its own: a model.safetensors beside an export's config.json may be anyone's.
  const bool st_ours = path_kind(st_path) == PathKind::kFile && safetensors_from_longnet(st_path);
  const std::string tok_path = tok.file.empty() ? "" : out_dir + "/" + tok.file;
  // (also the very file this export writes, left by an export cut short before its config.json)
  const bool tok_ours = tok.file == old_tok_file ||
                        (!tok_path.empty() && path_kind(tok_path) == PathKind::kFile && [&] {
                          try {
                            return file_read_bounded(tok_path, "tokenizer file",
                                                     tok.content.size() + 1) == tok.content;
                          } catch (const std::runtime_error&) {
                            return false;
                          }
                        }());
  for (const auto& [p, mine] : {std::make_pair(cfg_path, ours), std::make_pair(st_path, st_ours),
                                std::make_pair(tok_path, tok_ours)})
    if (!p.empty() && path_kind(p) != PathKind::kMissing && !mine)
      throw std::invalid_argument("export: '" + p +
                                  "' exists and is not from a longnet export; it is not replaced. "
                                  "Give another --out directory, or remove the file");
  s.tokenizer_note = tok.note;
  s.tokenizer_file = tok.file;
  // Every new file is written whole under another name first (a failed write, a full disk,
  // leaves the previous export as it was); then the previous config.json goes, the files take
  // their names, and the new config.json comes last: an export cut short between those renames
  // leaves no config.json, never one beside another model's weights (which would load as the
  // wrong model).
  const std::string json =
      "{\n  \"architecture\": \"LongNetLM\",\n  \"format\": "
      "\"longnet-export-1\",\n  \"step\": " +
      std::to_string(s.step) + ",\n  \"model\": " + lm_options_json(config.model) +
      ",\n  \"tokenizer\": " + tok.json + "\n}\n";
  const std::string st_new = out_dir + "/.model.safetensors.new",
                    cfg_new = out_dir + "/.config.json.new",
                    tok_new_path = tok_path.empty() ? "" : out_dir + "/." + tok.file + ".new";
  // None of the paths written, replaced or removed is an input: the checkpoint (under any name
  // in --out), or the tokenizer file the model's data was made with (a copy is replaced and
  // removed by later exports; the file it was trained with is the user's).
  for (const std::string& p : {st_new, cfg_new, tok_new_path, st_path, cfg_path, tok_path,
                               old_tok_file.empty() ? std::string() : out_dir + "/" + old_tok_file})
    if (!p.empty()) try {
        output_not_input(p, {checkpoint, tok.source}, "longnet export: the output");
      } catch (const std::runtime_error& e) {
        throw std::invalid_argument(std::string(e.what()) + ". Nothing was written");
      }
  auto remove_new = [&] {
    for (const std::string& p : {st_new, cfg_new, tok_new_path})
      if (!p.empty()) ::unlink(p.c_str());
  };
  // A stop signal before the renames below are done removes the new files too (once renamed,
  // their names are free, and removing them does nothing).
  std::vector<std::unique_ptr<TempFileOnSignal>> on_signal;
  for (const std::string& p : {st_new, cfg_new, tok_new_path})
    if (!p.empty()) on_signal.push_back(std::make_unique<TempFileOnSignal>(p));
  try {
    safetensors_write(st_new, tensors,
                      {{"format", "pt"},
                       {"longnet_checkpoint", checkpoint},
                       {"longnet_step", std::to_string(s.step)}});
    if (!tok_new_path.empty())
      file_write_atomic(tok_new_path, {{tok.content.data(), tok.content.size()}});
    file_write_atomic(cfg_new, {{json.data(), json.size()}});
  } catch (const std::exception& e) {
    remove_new();
    if (!dir_existed) ::rmdir(out_dir.c_str());  // (only while empty: nothing written is lost)
    throw std::runtime_error(
        std::string("export: ") + e.what() +
        (ours ? "; the previous export in --out is left as it was" : "; nothing was exported"));
  }
  if (ours && ::unlink(cfg_path.c_str()) != 0 && errno != ENOENT) {
    const int e = errno;
    remove_new();
    throw std::runtime_error("export: cannot replace '" + cfg_path + "': " + std::strerror(e) +
                             ". Nothing was written");
  }
  for (const auto& [from, to] :
       {std::make_pair(tok_new_path, tok_path), std::make_pair(st_new, st_path),
        std::make_pair(cfg_new, cfg_path)})
    if (!from.empty() && ::rename(from.c_str(), to.c_str()) != 0) {
      const int e = errno;
      remove_new();
      throw std::runtime_error(
          "export: cannot rename '" + from + "' to '" + to + "': " + std::strerror(e) +
          (ours ? "; --out holds no config.json now (export again)" : "; nothing was exported"));
    }
  // The previous export's tokenizer file, when this one names another or none.
  if (!old_tok_file.empty() && old_tok_file != tok.file)
    ::unlink((out_dir + "/" + old_tok_file).c_str());
  return s;
}

}  // namespace longnet
