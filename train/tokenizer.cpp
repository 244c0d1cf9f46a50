// tokenizer_open: parses a KIND[:PATH] spec and hands it to the kind's constructor (see
// tokenizer.h), so that every caller reports a bad spec the same way.
#include "longnet/train/tokenizer.h"

#include <cstdint>
#include <stdexcept>

#include "longnet/core/file_util.h"
#include "longnet/train/tokenizer_kinds.h"

namespace longnet {

namespace {
constexpr const char* kSpecHelp =
    "use bytes, bytes:eot, tiktoken:PATH (a .tiktoken ranks file such as "
    "cl100k_base.tiktoken) or sentencepiece:PATH (a .model file)";
}

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

size_t text_piece_length(std::string_view text, size_t off) {
  const size_t rest = text.size() - off;
  if (rest <= kTextPieceBytes) return rest;
  const size_t nl = text.rfind('\n', off + kTextPieceBytes - 1);
  if (nl != std::string_view::npos && nl + 1 >= off + kTextPieceBytes / 2) return nl + 1 - off;
  size_t cut = kTextPieceBytes;
  for (int back = 0; back < 3 && (static_cast<unsigned char>(text[off + cut]) & 0xC0) == 0x80;
       ++back)
    --cut;
  return cut;
}

std::unique_ptr<Tokenizer> tokenizer_open(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? spec.substr(colon + 1) : "";
  if (kind == "bytes") {
    if (!has_arg) return bytes_tokenizer_open(false);
    if (arg == "eot") return bytes_tokenizer_open(true);
    throw std::invalid_argument("tokenizer '" + spec +
                                "': the bytes tokenizer takes no file; use bytes (vocabulary "
                                "256) or bytes:eot (vocabulary 257, end-of-text 256)");
  }
  if (kind == "tiktoken" || kind == "sentencepiece") {
    if (arg.empty())
      throw std::invalid_argument(
          "tokenizer '" + spec + "': " + kind + " needs a file: " + kind +
          (kind == "tiktoken" ? ":PATH/cl100k_base.tiktoken" : ":PATH/tokenizer.model"));
    return kind == "tiktoken" ? tiktoken_open(arg) : sentencepiece_open(arg);
  }
  throw std::invalid_argument("unknown tokenizer '" + spec + "' (kind '" + kind + "'); " +
                              kSpecHelp);
}

}  // namespace longnet
