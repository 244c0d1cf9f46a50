// The byte tokenizer (see tokenizer.h): ids are the bytes, as in today's token files; with
// bytes:eot, id 256 is an end-of-text that separates documents (vocabulary 257).
#include <stdexcept>

#include "longnet/train/tokenizer_kinds.h"

namespace longnet {
namespace {

constexpr uint32_t kEot = 256;
constexpr const char* kEotText = "<|endoftext|>";

class BytesTokenizer final : public Tokenizer {
 public:
  explicit BytesTokenizer(bool with_eot) : with_eot_(with_eot) {}

  void encode_append(std::string_view text, std::vector<uint32_t>& out) const override {
    const size_t base = out.size();
    out.resize(base + text.size());
    for (size_t i = 0; i < text.size(); ++i) out[base + i] = static_cast<unsigned char>(text[i]);
  }

  std::string decode(const uint32_t* ids, size_t count) const override {
    std::string s;
    s.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      if (ids[i] < 256) {
        s.push_back(static_cast<char>(ids[i]));
      } else if (with_eot_ && ids[i] == kEot) {
        s += kEotText;
      } else {
        throw std::out_of_range("tokenizer " + spec() + ": id " + std::to_string(ids[i]) +
                                " (at position " + std::to_string(i) +
                                ") is not a token; ids are below " + std::to_string(vocab_size()));
      }
    }
    return s;
  }

  uint32_t vocab_size() const override { return with_eot_ ? 257 : 256; }
  std::optional<uint32_t> eot_id() const override {
    return with_eot_ ? std::optional<uint32_t>(kEot) : std::nullopt;
  }
  std::string kind() const override { return "bytes"; }
  std::string spec() const override { return with_eot_ ? "bytes:eot" : "bytes"; }
  std::string content_hash() const override { return spec(); }
  std::unique_ptr<Tokenizer> clone() const override {
    return std::make_unique<BytesTokenizer>(with_eot_);
  }

 private:
  bool with_eot_;
};

}  // namespace

std::unique_ptr<Tokenizer> bytes_tokenizer_open(bool with_eot) {
  return std::make_unique<BytesTokenizer>(with_eot);
}

}  // namespace longnet
