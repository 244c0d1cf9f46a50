// tokenizer_open: parses a KIND[:PATH] spec and hands it to the kind's constructor (see
// tokenizer.h), so that every caller reports a bad spec the same way.
#include "longnet/train/tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "longnet/core/file_util.h"
#include "longnet/train/tokenizer_kinds.h"

namespace longnet {

std::string tokenizer_file_read(const std::string& path, const std::string& what) {
  // Checked without blocking (a FIFO is refused, not opened for reading) and bounded.
  return file_read_bounded(path, what, uint64_t{1} << 30);
}

bool tokenizer_kind_available(const std::string& kind) {
  if (kind == "bytes") return true;
  if (kind == "tiktoken") return tiktoken_available();
  if (kind == "sentencepiece") return sentencepiece_available();
  return false;
}

size_t text_piece_length(std::string_view text, size_t off, size_t max) {
  const size_t rest = text.size() - off;
  if (rest <= max) return rest;
  auto blank = [&](size_t i) {
    const char c = text[i];
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  const size_t lo = off + max / 2, hi = off + max;  // the cut is in [lo, hi]
  for (size_t i = hi; i > lo; --i)  // a cut at i: text[i] the space, text[i +- 1] not blank
    if (text[i] == ' ' && !blank(i - 1) && i + 1 < text.size() && !blank(i + 1)) return i - off;
  for (size_t i = hi; i > lo; --i)  // a cut at i: text[i - 1] the newline, text[i] not blank
    if (text[i - 1] == '\n' && !blank(i)) return i - off;
  size_t cut = max;
  for (int back = 0; back < 3 && (static_cast<unsigned char>(text[off + cut]) & 0xC0) == 0x80;
       ++back)
    --cut;
  return cut;
}

std::string tokenizer_loss_example(const Tokenizer& tok) {
  const std::string probe = "\tint x;\n  y = \"caf\xc3\xa9 \xe4\xbd\xa0\";\r\n}";
  const std::vector<uint32_t> ids = tok.encode(probe);
  const std::string back = tok.decode(ids.data(), ids.size());
  if (back == probe) return "";
  auto shown = [](const std::string& s) {
    std::string out;
    for (char c : s)
      out += c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : std::string(1, c);
    return "'" + out + "'";
  };
  return shown(probe) + " comes back as " + shown(back);
}

std::string tokenizer_spec_absolute(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos) return spec;
  const std::string kind = spec.substr(0, colon), path = spec.substr(colon + 1);
  if ((kind != "tiktoken" && kind != "sentencepiece") || path.empty() || path[0] == '/')
    return spec;
  const std::string resolved = path_resolve(path);
  return resolved.empty() ? spec : kind + ":" + resolved;
}

TextStream::TextStream(const Tokenizer& tokenizer, const std::vector<uint32_t>& context)
    : tokenizer_(tokenizer), joined_(tokenizer.kind() != "sentencepiece") {
  if (joined_) return;
  ids_.assign(context.end() - std::min(kContext, context.size()), context.end());
  printed_ = ids_.size();
}

std::string TextStream::add(uint32_t id) {
  if (joined_) return tokenizer_.decode(&id, 1);
  ids_.push_back(id);
  return pending(false);
}

std::string TextStream::flush() {
  return joined_ ? std::string() : pending(true);
}

std::string TextStream::pending(bool final) {
  // A few printed tokens before the held ones: their decode is the context the new text
  // follows (a space SentencePiece drops at the start of a text is kept after them).
  constexpr size_t kMaxHeld = 16;
  if (printed_ == ids_.size()) return "";
  const size_t from = printed_ > kContext ? printed_ - kContext : 0;
  const std::string before = tokenizer_.decode(ids_.data() + from, printed_ - from);
  const std::string all = tokenizer_.decode(ids_.data() + from, ids_.size() - from);
  const bool extends = all.compare(0, before.size(), before) == 0;
  // An incomplete character at the end (a byte piece of a longer one) decodes as U+FFFD:
  // held until the rest comes (a real U+FFFD is given out after kMaxHeld tokens).
  const bool incomplete = all.size() >= 3 && all.compare(all.size() - 3, 3, "\xef\xbf\xbd") == 0;
  if (!final && (!extends || incomplete) && ids_.size() - printed_ < kMaxHeld) return "";
  // Only the last kContext printed ids are read again: the rest are dropped.
  if (ids_.size() > kContext) ids_.erase(ids_.begin(), ids_.end() - kContext);
  printed_ = ids_.size();
  return all.substr(extends ? before.size() : std::min(before.size(), all.size()));
}

std::vector<uint32_t> document_separator(const Tokenizer& tokenizer) {
  const auto eot = tokenizer.eot_id();
  return eot ? std::vector<uint32_t>{*eot} : tokenizer.encode("\n");
}

bool tokenizer_decode_windows(const Tokenizer& tokenizer, const uint32_t* ids, size_t n,
                              size_t window, const std::function<bool(const std::string&)>& out) {
  window = std::max<size_t>(window, 1);
  for (size_t i = 0; i < n; i += window) {  // every id valid before any text
    const size_t len = std::min(window, n - i);
    try {
      (void)tokenizer.decode(ids + i, len);
    } catch (const std::out_of_range&) {
      // Named at its position in the whole input, not in the window.
      for (size_t j = i; j < i + len; ++j) try {
          (void)tokenizer.decode(ids + j, 1);
        } catch (const std::out_of_range& e) {
          std::string m = e.what();
          const std::string at = "(at position 0)";
          if (const size_t k = m.rfind(at); k != std::string::npos)  // (after the spec)
            m.replace(k, at.size(), "(at position " + std::to_string(j) + ")");
          throw std::out_of_range(m);
        }
      throw;
    }
  }
  if (tokenizer.kind() != "sentencepiece") {
    for (size_t i = 0; i < n; i += window)
      if (!out(tokenizer.decode(ids + i, std::min(window, n - i)))) return false;
    return true;
  }
  auto whole_piece = [&](uint32_t id) {  // decodes alone to text, no part of a longer character
    const std::string t = tokenizer.decode(&id, 1);
    return !t.empty() && t.find("\xef\xbf\xbd") == std::string::npos;
  };
  // Inside a run of byte pieces (text the model has no piece for: CJK, emoji, binary), no piece
  // is whole. A cut between two byte pieces (each alone decodes to U+FFFD, and neither carries a
  // space) is clean when the ids around it decode to the same text cut or not (no character of
  // several bytes split), which a character of at most 4 bytes shows within 4 ids on each side.
  // So a window never grows more than a few ids past `window`.
  const std::string replacement = "\xef\xbf\xbd";
  auto clean_cut = [&](size_t c) {  // 0 < c < n
    const std::string before = tokenizer.decode(ids + c - 1, 1);
    if (before != replacement || tokenizer.decode(ids + c, 1) != replacement) return false;
    // (the ids before the window count too: the cut text is what decodes before it)
    const size_t lo = c - std::min<size_t>(4, c), hi = std::min(n, c + 4);
    const std::string left = tokenizer.decode(ids + lo, c - lo);
    const std::string right = tokenizer.decode(ids + c - 1, hi - c + 1);
    return right.compare(0, before.size(), before) == 0 &&
           tokenizer.decode(ids + lo, hi - lo) == left + right.substr(before.size());
  };
  for (size_t begin = 0; begin < n;) {
    size_t end = std::min(n, begin + window);
    while (end < n && !(whole_piece(ids[end - 1]) && whole_piece(ids[end])) && !clean_cut(end))
      ++end;
    std::string text;
    if (begin == 0) {
      text = tokenizer.decode(ids, end);
    } else {  // after the id before the cut (a whole piece), whose text is dropped
      const std::string before = tokenizer.decode(ids + begin - 1, 1);
      text = tokenizer.decode(ids + begin - 1, end - begin + 1);
      if (text.compare(0, before.size(), before) != 0)
        throw std::runtime_error("tokenizer " + tokenizer.spec() + ": the text of ids " +
                                 std::to_string(begin) + " on does not follow the text of id " +
                                 std::to_string(begin - 1) +
                                 " (its decode is not by pieces); nothing after it was decoded");
      text.erase(0, before.size());
    }
    if (!out(text)) return false;
    begin = end;
  }
  return true;
}

std::unique_ptr<Tokenizer> tokenizer_open(const std::string& spec) {
  tokenizer_spec_check(spec);
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (kind == "bytes") return bytes_tokenizer_open(arg == "eot");
  return kind == "tiktoken" ? tiktoken_open(arg) : sentencepiece_open(arg);
}

}  // namespace longnet
