// SentencePiece models (see tokenizer.h) through the SentencePiece C++ library: encode and
// decode are the library's own, so ids equal Python sentencepiece's for the same .model file.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "longnet/train/sha256.h"
#include "longnet/train/tokenizer_kinds.h"

#include "longnet/longnet_tokenizer_config.h"

#if LONGNET_WITH_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace longnet {

#if !LONGNET_WITH_SENTENCEPIECE

bool sentencepiece_available() {
  return false;
}
std::unique_ptr<Tokenizer> sentencepiece_open(const std::string& path) {
  throw std::runtime_error("tokenizer sentencepiece:" + path +
                           ": this build has no SentencePiece support: install "
                           "libsentencepiece-dev and reconfigure (cmake "
                           "-DLONGNET_SENTENCEPIECE=ON)");
}

#else

bool sentencepiece_available() {
  return true;
}

namespace {

// ---- the normalization tables, walked before SentencePiece walks them -------------------------
// A model's precompiled_charsmap (NormalizerSpec field 2 of the ModelProto's normalizer_spec,
// field 3, and denormalizer_spec, field 5) is a darts-clone double array over text bytes and the
// strings its leaves point at. Debian's libsentencepiece (0.1.97) follows it without bounds
// checks: a damaged table crashed the first Encode (SIGSEGV). So it is read from the protobuf and
// every node reachable from the root is checked here first.

// A protobuf varint at p (advanced); false past `end` or beyond 64 bits.
bool read_varint(const unsigned char*& p, const unsigned char* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const unsigned char b = *p++;
    v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Calls f(field number, bytes) for each length-delimited field of a message; false when the
// bytes are no message (SentencePiece's own parse then says so).
template <typename F>
bool for_each_bytes_field(std::string_view msg, F&& f) {
  const auto* p = reinterpret_cast<const unsigned char*>(msg.data());
  const auto* end = p + msg.size();
  while (p < end) {
    uint64_t key = 0, v = 0;
    if (!read_varint(p, end, key)) return false;
    switch (key & 7) {
      case 0:
        if (!read_varint(p, end, v)) return false;
        break;
      case 1:
      case 5: {
        const size_t n = (key & 7) == 1 ? 8 : 4;
        if (size_t(end - p) < n) return false;
        p += n;
        break;
      }
      case 2:
        if (!read_varint(p, end, v) || v > uint64_t(end - p)) return false;
        f(key >> 3, std::string_view(reinterpret_cast<const char*>(p), size_t(v)));
        p += v;
        break;
      default:
        return false;  // (groups: never in a model)
    }
  }
  return true;
}

// "" when SentencePiece can walk the table safely, else what is wrong with it.
std::string charsmap_problem(std::string_view blob) {
  if (blob.empty()) return "";  // no table: the identity normalization
  if (blob.size() < 4) return "it is shorter than its 4-byte header";
  uint32_t trie_bytes = 0;
  for (int i = 3; i >= 0; --i) trie_bytes = trie_bytes << 8 | static_cast<unsigned char>(blob[i]);
  if (trie_bytes > blob.size() - 4) return "its trie runs past the table";
  if (trie_bytes == 0 || trie_bytes % 1024 != 0)
    return "its trie is not whole blocks of 256 units";  // (as darts-clone builds them)
  const std::string_view normalized = blob.substr(4 + trie_bytes);
  const size_t units = trie_bytes / 4;
  auto unit = [&blob](size_t i) {
    uint32_t u = 0;
    for (int b = 3; b >= 0; --b) u = u << 8 | static_cast<unsigned char>(blob[4 + 4 * i + b]);
    return u;
  };
  // darts-clone's unit fields.
  auto offset = [](uint32_t u) -> size_t { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto label = [](uint32_t u) { return u & ((1u << 31) | 0xffu); };
  auto has_leaf = [](uint32_t u) { return ((u >> 8) & 1) != 0; };
  auto value = [](uint32_t u) { return u & ((1u << 31) - 1); };
  std::vector<char> seen(units, 0);
  std::vector<size_t> todo;
  const size_t root = offset(unit(0));
  if (root >= units) return "its root points outside the trie";
  seen[root] = 1;
  todo.push_back(root);
  while (!todo.empty()) {
    const size_t node = todo.back();
    todo.pop_back();
    for (uint32_t c = 0; c < 256; ++c) {
      const size_t child = node ^ c;
      if (child >= units) return "a node points outside the trie";
      const uint32_t u = unit(child);
      if (label(u) != c) continue;
      const size_t next = child ^ offset(u);
      if (next >= units) return "a node points outside the trie";
      if (has_leaf(u)) {
        const size_t at = value(unit(next));
        if (at >= normalized.size() || normalized.find('\0', at) == std::string_view::npos)
          return "a rule points outside its replacement strings";
      }
      if (!seen[next]) {
        seen[next] = 1;
        todo.push_back(next);
      }
    }
  }
  return "";
}

// Throws for a model whose normalization tables SentencePiece could not walk safely.
void charsmaps_check(const std::string& model, const std::string& path) {
  for_each_bytes_field(model, [&](uint64_t field, std::string_view spec) {
    if (field != 3 && field != 5) return;
    for_each_bytes_field(spec, [&](uint64_t f, std::string_view table) {
      if (f != 2) return;
      const std::string why = charsmap_problem(table);
      if (!why.empty())
        throw std::runtime_error(
            "SentencePiece model '" + path + "' cannot be used: the precompiled_charsmap of its " +
            (field == 3 ? "normalizer_spec" : "denormalizer_spec") + " is damaged (" + why +
            "); SentencePiece would read past it. Give an intact .model file (e.g. one written "
            "by longnet tokenizer train, or a fresh copy of the original)");
    });
  });
}

// How a text may be cut before a space between two words so that the pieces' ids are the whole
// text's (Tokenizer::piece_length): the piece after the cut keeps its space (a model without a
// dummy prefix, or one that removes extra whitespace), drops it (a dummy prefix that would
// otherwise double it: add_dummy_prefix without remove_extra_whitespaces, as Llama's), or there
// is no such cut (e.g. extra whitespace removed and no dummy prefix: the space would vanish).
enum class SpaceCut { kKeep, kDrop, kNone };

struct SentencePieceModel {
  std::string path, sha256;
  sentencepiece::SentencePieceProcessor processor;
  SpaceCut space_cut = SpaceCut::kNone;
  // Control characters that may come before a cut space: those the model keeps as they are
  // (a model that normalizes them to spaces would join them to the space's run).
  std::string kept_controls;
};

// Found by encoding word pairs whole and cut (the normalizer's settings are not exposed by the
// library's public header). A vocabulary with a piece holding U+2581 after another character
// ("of\u2581the", or "the\u2581" of a model that puts spaces at the end of words) lets words
// cross spaces: no cut then.
SpaceCut space_cut_probe(const sentencepiece::SentencePieceProcessor& sp) {
  const std::string space_sign = "\xe2\x96\x81";
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    const std::string piece = sp.IdToPiece(id);
    size_t first_other = 0;  // the first byte past the leading U+2581s
    while (piece.compare(first_other, 3, space_sign) == 0) first_other += 3;
    if (first_other < piece.size() && piece.find(space_sign, first_other) != std::string::npos)
      return SpaceCut::kNone;
  }
  bool keep = true, drop = true;
  for (const char* pair : {"hello world", "a b", "The end.", "x = 1;", "int main(void)"}) {
    const std::string whole = pair;
    const size_t at = whole.find(' ');
    std::vector<int> all, left, right_kept, right_dropped;
    if (!sp.Encode(whole, &all).ok() || !sp.Encode(whole.substr(0, at), &left).ok() ||
        !sp.Encode(whole.substr(at), &right_kept).ok() ||
        !sp.Encode(whole.substr(at + 1), &right_dropped).ok())
      return SpaceCut::kNone;
    auto joined = [&](const std::vector<int>& right) {
      std::vector<int> v = left;
      v.insert(v.end(), right.begin(), right.end());
      return v;
    };
    keep = keep && joined(right_kept) == all;
    drop = drop && joined(right_dropped) == all;
  }
  return keep ? SpaceCut::kKeep : drop ? SpaceCut::kDrop : SpaceCut::kNone;
}

// A printable ASCII character other than the space: nothing a normalization turns into white
// space (as NFKC does U+3000) or joins to a space.
bool ascii_graphic(char c) {
  return c > ' ' && c < 0x7f;
}

// The controls of "\n\t\r" that the model keeps (no U+2581 in the pieces of "x" c "y" past a
// dummy prefix's).
std::string kept_controls_probe(const sentencepiece::SentencePieceProcessor& sp) {
  std::string kept;
  for (char c : {'\n', '\t', '\r'}) {
    std::vector<std::string> pieces;
    if (!sp.Encode(std::string("x") + c + "y", &pieces).ok() || pieces.empty()) continue;
    if (pieces[0].rfind("\xe2\x96\x81", 0) == 0) pieces[0].erase(0, 3);
    bool space = false;
    for (const auto& p : pieces) space = space || p.find("\xe2\x96\x81") != std::string::npos;
    if (!space) kept += c;
  }
  return kept;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::shared_ptr<const SentencePieceModel> model)
      : m_(std::move(model)) {}

  void encode_append(std::string_view text, std::vector<uint32_t>& out) const override {
    const auto status = m_->processor.Encode(text, &scratch_);
    if (!status.ok())
      throw std::runtime_error("tokenizer " + spec() + ": encode failed: " + status.ToString());
    out.insert(out.end(), scratch_.begin(), scratch_.end());
  }

  // Before the last single space between two printable ASCII characters (or a newline, tab or
  // carriage return the model keeps, then the space) within max bytes: SentencePiece starts a
  // word at a space (as U+2581) and no piece crosses it; a space next to other white space is
  // not cut at (a model with whitespace-only pieces keeps a run of spaces together).
  size_t piece_length(std::string_view text, size_t max) const override {
    if (text.size() <= max) return text.size();
    if (m_->space_cut != SpaceCut::kNone)
      for (size_t i = std::min(max, text.size() - 2); i > 0; --i)
        if (text[i] == ' ' && ascii_graphic(text[i + 1]) &&
            (ascii_graphic(text[i - 1]) ||
             m_->kept_controls.find(text[i - 1]) != std::string::npos))
          return i;
    return text_piece_length(text, 0, max);
  }
  void encode_after_cut(std::string_view piece, std::vector<uint32_t>& out) const override {
    if (m_->space_cut == SpaceCut::kDrop && !piece.empty() && piece[0] == ' ')
      piece.remove_prefix(1);
    encode_append(piece, out);
  }

  // SentencePiece's own decode: control ids (</s>, <s>) give no text, <unk> gives " \u2047 ",
  // and byte pieces that do not form valid UTF-8 become U+FFFD.
  std::string decode(const uint32_t* ids, size_t count) const override {
    const uint32_t n = vocab_size();
    scratch_.resize(count);
    for (size_t i = 0; i < count; ++i) {
      if (ids[i] >= n)
        throw std::out_of_range("tokenizer " + spec() + ": id " + std::to_string(ids[i]) +
                                " (at position " + std::to_string(i) +
                                ") is not a token; ids are below " + std::to_string(n));
      scratch_[i] = static_cast<int>(ids[i]);
    }
    std::string s;
    const auto status = m_->processor.Decode(scratch_, &s);
    if (!status.ok())
      throw std::runtime_error("tokenizer " + spec() + ": decode failed: " + status.ToString());
    return s;
  }

  uint32_t vocab_size() const override {
    return static_cast<uint32_t>(m_->processor.GetPieceSize());
  }
  std::optional<uint32_t> eot_id() const override {
    const int eos = m_->processor.eos_id();
    return eos >= 0 ? std::optional<uint32_t>(static_cast<uint32_t>(eos)) : std::nullopt;
  }
  std::string kind() const override { return "sentencepiece"; }
  std::string spec() const override { return "sentencepiece:" + m_->path; }
  std::string content_hash() const override { return "sentencepiece:" + m_->sha256; }
  std::unique_ptr<Tokenizer> clone() const override {
    return std::make_unique<SentencePieceTokenizer>(m_);
  }

 private:
  std::shared_ptr<const SentencePieceModel> m_;
  mutable std::vector<int> scratch_;
};

}  // namespace

std::unique_ptr<Tokenizer> sentencepiece_open(const std::string& path) {
  auto m = std::make_shared<SentencePieceModel>();
  m->path = path;
  const std::string data = tokenizer_file_read(path, "SentencePiece model");
  if (data.empty())
    throw std::runtime_error("SentencePiece model '" + path +
                             "' is empty (0 bytes); give a .model file written by SentencePiece, "
                             "e.g. by longnet tokenizer train");
  m->sha256 = sha256_hex(data);
  charsmaps_check(data, path);
  const auto status = m->processor.LoadFromSerializedProto(data);
  if (!status.ok()) {
    // A file that is no model protobuf fails SentencePiece's parse with an internal message
    // naming its own source line: said in words.
    const std::string why = status.ToString().find("ParseFromArray") != std::string::npos
                                ? "it is not a SentencePiece model (its bytes do not parse as one)"
                                : status.ToString();
    throw std::runtime_error("SentencePiece model '" + path + "' cannot be loaded: " + why +
                             " (is it a .model file written by SentencePiece, e.g. by longnet "
                             "tokenizer train?)");
  }
  if (m->processor.GetPieceSize() <= 0)
    throw std::runtime_error("SentencePiece model '" + path + "' has no pieces");
  // (Newer SentencePiece refuses such a model; the one this build links may not.)
  for (int id = 0; id < m->processor.GetPieceSize(); ++id)
    if (m->processor.IdToPiece(id).find('\0') != std::string::npos)
      throw std::runtime_error("SentencePiece model '" + path + "' is damaged: piece " +
                               std::to_string(id) +
                               " holds a NUL character, which no SentencePiece trainer writes");
  m->space_cut = space_cut_probe(m->processor);
  m->kept_controls = kept_controls_probe(m->processor);
  return std::make_unique<SentencePieceTokenizer>(m);
}

#endif  // LONGNET_WITH_SENTENCEPIECE

}  // namespace longnet
