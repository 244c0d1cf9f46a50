// The form of a tokenizer spec (see tokenizer.h), checked without opening anything: plain C++, so
// that the config checks (and their fuzzer, tests/fuzz/config_sources.txt) can use it alone.
#include <stdexcept>
#include <string>

#include "longnet/train/tokenizer.h"

namespace longnet {

namespace {
constexpr const char* kSpecHelp =
    "use bytes, bytes:eot, tiktoken:PATH (a .tiktoken ranks file such as "
    "cl100k_base.tiktoken) or sentencepiece:PATH (a .model file)";
}  // namespace

void tokenizer_spec_check(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? spec.substr(colon + 1) : "";
  if (kind == "bytes") {
    if (!has_arg || arg == "eot") return;
    throw std::invalid_argument("tokenizer '" + spec +
                                "': the bytes tokenizer takes no file; use bytes (vocabulary "
                                "256) or bytes:eot (vocabulary 257, end-of-text 256)");
  }
  if (kind == "tiktoken" || kind == "sentencepiece") {
    if (arg.empty())
      throw std::invalid_argument(
          "tokenizer '" + spec + "': " + kind + " needs a file: " + kind +
          (kind == "tiktoken" ? ":PATH/cl100k_base.tiktoken" : ":PATH/tokenizer.model"));
    return;
  }
  throw std::invalid_argument("unknown tokenizer '" + spec + "' (kind '" + kind + "'); " +
                              kSpecHelp);
}

}  // namespace longnet
