// A test driver for the tokenizers, used by tests/test_tokenizer_reference.py to compare ids with
// Python tiktoken and sentencepiece many texts per process (LibTorch loads slowly):
//   tokenizer_tool batch-encode SPEC IN OUT   IN: [u32 len][bytes]...  OUT: [u32 n][u32 id x n]...
//   tokenizer_tool batch-decode SPEC IN OUT   IN: [u32 n][u32 id x n]... OUT: [u32 len][bytes]...
//   tokenizer_tool available KIND             prints yes or no
//   tokenizer_tool stream SPEC CONTEXT IDS    prints IDS streamed one by one after CONTEXT (ids
//                                             as a,b,c), as `longnet generate` prints them
//   tokenizer_tool ARGS...                    `longnet tokenizer ARGS...` (train, encode, ...)
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "longnet/cli/tokenizer_command.h"
#include "longnet/train/tokenizer.h"

namespace {

uint32_t read_u32(std::istream& in, bool& ok) {
  unsigned char b[4];
  ok = static_cast<bool>(in.read(reinterpret_cast<char*>(b), 4));
  return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
}

void write_u32(std::ostream& out, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 24)};
  out.write(reinterpret_cast<const char*>(b), 4);
}

int batch(const std::string& mode, const std::string& spec, const std::string& in_path,
          const std::string& out_path) {
  auto tok = longnet::tokenizer_open(spec);
  std::ifstream in(in_path, std::ios::binary);
  std::ofstream out(out_path, std::ios::binary);
  if (!in || !out) throw std::runtime_error("cannot open " + in_path + " or " + out_path);
  for (;;) {
    bool ok = false;
    const uint32_t n = read_u32(in, ok);
    if (!ok) break;
    if (mode == "batch-encode") {
      std::string text(n, '\0');
      in.read(&text[0], n);
      const auto ids = tok->encode(text);
      write_u32(out, static_cast<uint32_t>(ids.size()));
      for (uint32_t id : ids) write_u32(out, id);
    } else {
      std::vector<uint32_t> ids(n);
      for (auto& id : ids) id = read_u32(in, ok);
      const std::string text = tok->decode(ids);
      // Decoded in windows of 3 ids (the decode command's way, by other cuts), the same text.
      std::string joined;
      longnet::tokenizer_decode_windows(*tok, ids.data(), ids.size(), 3,
                                        [&](const std::string& x) { return joined += x, true; });
      if (joined != text)
        throw std::runtime_error("decoded in windows, ids give other text than decoded whole");
      write_u32(out, static_cast<uint32_t>(text.size()));
      out.write(text.data(), static_cast<std::streamsize>(text.size()));
    }
  }
  return out ? 0 : 1;
}

std::vector<uint32_t> id_list(const std::string& text) {
  std::vector<uint32_t> ids;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find(',', at);
    if (end == std::string::npos) end = text.size();
    ids.push_back(static_cast<uint32_t>(std::stoul(text.substr(at, end - at))));
    at = end + 1;
  }
  return ids;
}

int stream(const std::string& spec, const std::string& context, const std::string& ids) {
  auto tok = longnet::tokenizer_open(spec);
  longnet::TextStream s(*tok, id_list(context));
  std::string text;
  for (uint32_t id : id_list(ids)) text += s.add(id);
  std::cout << text + s.flush();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && (args[0] == "batch-encode" || args[0] == "batch-decode"))
      return batch(args[0], args[1], args[2], args[3]);
    if (args.size() == 4 && args[0] == "stream") return stream(args[1], args[2], args[3]);
    if (args.size() == 2 && args[0] == "separator") {  // the ids between two documents
      for (uint32_t id : longnet::document_separator(*longnet::tokenizer_open(args[1])))
        std::cout << id << " ";
      std::cout << "\n";
      return 0;
    }
    if (args.size() == 2 && args[0] == "available") {
      std::cout << (longnet::tokenizer_kind_available(args[1]) ? "yes" : "no") << "\n";
      return 0;
    }
    return longnet::tokenizer_command(args);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
