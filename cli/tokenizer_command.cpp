// `longnet tokenizer train|encode|decode|info` (see tokenizer_command.h): flags through CliFlags,
// data through stdin and stdout, so the commands compose with shell pipes and tests.
#include "longnet/cli/tokenizer_command.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <regex>
#include <stdexcept>

#include "longnet/cli/cli_flags.h"
#include "longnet/cli/commands.h"
#include "longnet/cli/common_flags.h"
#include "longnet/cli/stdout_stream.h"
#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/train/tokenizer.h"
#include "longnet/train/tokenizer_train.h"

namespace longnet {
namespace {

// Input read at most (as generate's prompt files): an endless stdin (/dev/zero) ends in a clear
// error, not in the memory running out.
constexpr size_t kStdinMaxBytes = size_t(1) << 30;

// Refuses, before anything is read or written, a stdin known to pass kStdinMaxBytes: a regular
// file larger than that, or a device that never ends (/dev/zero, /dev/urandom; /dev/null and a
// terminal are read).
// How to give more than 1 GiB: in pieces cut where they may be (ids between numbers; text
// anywhere for bytes, but a cut inside a multi-byte character or pre-token changes subword ids).
std::string pieces_hint(const std::string& command) {
  return command == "decode"
             ? "give it in pieces cut between ids (e.g. tr ' ' '\\n' < IDS | split -l 100000000 "
               "- part_, then decode each part), not by bytes, which would cut an id in two"
             : "give it in pieces cut at line ends (e.g. split -C 512M), or tokenize a corpus "
               "with longnet data build";
}

void stdin_check(const std::string& command) {
  struct stat st;
  if (::fstat(0, &st) != 0) return;  // reading says what is wrong
  const std::string who = "longnet tokenizer " + command + ": stdin ";
  if (S_ISREG(st.st_mode) && uint64_t(st.st_size) > kStdinMaxBytes)
    throw std::invalid_argument(who + "is a file of " + std::to_string(st.st_size) +
                                " bytes, more than 1 GiB; " + pieces_hint(command));
  const bool dev_null = major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
  if (S_ISCHR(st.st_mode) && !::isatty(0) && !dev_null)
    throw std::invalid_argument(who +
                                "is a device that does not end (such as /dev/zero); give the "
                                "text in a file or through a pipe");
}

// Appends up to 64 KiB of stdin to `data`; false at the end of stdin. `total` counts every byte
// read, which may not pass kStdinMaxBytes.
bool stdin_read_some(std::string& data, uint64_t& total, const std::string& command) {
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(0, buf, sizeof(buf));
    if (n > 0) {
      data.append(buf, static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
      if (total > kStdinMaxBytes)
        throw std::invalid_argument("longnet tokenizer " + command +
                                    ": stdin holds more than 1 GiB; " + pieces_hint(command));
      return true;
    }
    if (n == 0) return false;
    if (errno != EINTR)
      throw std::runtime_error(std::string("reading stdin failed: ") + std::strerror(errno));
  }
}

std::string stdin_read_all(const std::string& command) {
  std::string data;
  uint64_t total = 0;
  while (stdin_read_some(data, total, command)) {
  }
  return data;
}

bool help_print(const CliFlags& f, const std::string& line, const std::string& about) {
  if (!f.help_requested()) return false;
  const std::string u = f.usage();
  std::cout << "usage: longnet tokenizer " << line << "\n" << about << u.substr(u.find('\n') + 1);
  return true;
}

std::unique_ptr<Tokenizer> tokenizer_from_flags(const CliFlags& f, const std::string& command) {
  if (!f.given("tokenizer"))
    throw std::invalid_argument("longnet tokenizer " + command + ": --tokenizer is required (" +
                                kTokenizerHelp + ")");
  return tokenizer_open(f.get("tokenizer"));
}

// tokenizer_train, with SentencePiece's too-small-vocabulary error said in the flags' terms.
TokenizerTrainSummary tokenizer_train_explained(const TokenizerTrainOptions& o) {
  try {
    return tokenizer_train(o);
  } catch (const std::runtime_error& e) {
    // "... Vocabulary size is smaller than required_chars. 300 vs 342. ..."
    static const std::regex chars(
        "Vocabulary size is smaller than required_chars\\. ([0-9]+) vs "
        "([0-9]+)");
    std::smatch m;
    const std::string what = e.what();
    if (!std::regex_search(what, m, chars)) throw;
    throw std::invalid_argument(
        "longnet tokenizer train: --vocab-size " + m[1].str() +
        " is below the pieces SentencePiece needs before any merge for this corpus (" + m[2].str() +
        ": its characters, the byte-fallback bytes and the special pieces); "
        "raise --vocab-size to at least that");
  }
}

void no_positional(const CliFlags& f, const std::string& command) {
  if (!f.positional().empty())
    throw std::invalid_argument("longnet tokenizer " + command + ": unexpected argument '" +
                                f.positional().front() + "' (the data comes on stdin)");
}

}  // namespace

int tokenizer_train_command(const std::vector<std::string>& args_in) {
  // --source may come several times and take several paths: gather them before CliFlags, which
  // keeps one value per flag.
  std::vector<std::string> sources, args;
  for (size_t i = 0; i < args_in.size(); ++i) {
    const std::string& a = args_in[i];
    if (a == "--source") {
      if (i + 1 >= args_in.size() || args_in[i + 1].rfind("--", 0) == 0)
        throw std::invalid_argument("longnet tokenizer train: --source needs a path");
      sources.push_back(args_in[++i]);
    } else if (a.rfind("--source=", 0) == 0) {
      sources.push_back(a.substr(9));
    } else {
      args.push_back(a);
    }
  }
  CliFlags f("tokenizer train");
  flags_tokenizer_train(f);
  f.parse(args);
  if (help_print(f, "train --vocab-size V --source PATH [PATH...] --out PATH.model [flags]",
                 "  Trains a SentencePiece BPE tokenizer (byte fallback, no normalization) on the "
                 "sources.\n"))
    return 0;
  refuse_several_ranks("tokenizer train");
  for (const auto& p : f.positional()) sources.push_back(p);
  if (sources.empty() || !f.given("vocab-size") || !f.given("out"))
    throw std::invalid_argument(
        "longnet tokenizer train: needs --vocab-size V, --source PATH and "
        "--out PATH.model (e.g. longnet tokenizer train --vocab-size "
        "32000 --source data/code --out data/code.model)");
  TokenizerTrainOptions o;
  o.sources = sources;
  o.vocab_size = f.get_int("vocab-size");
  o.out_path = f.get("out");
  o.corpus.jsonl_field = f.get("jsonl-field");
  o.corpus.skip_bad_lines = f.get_switch("skip-bad-lines");
  // Each number is range-checked by its flag (command_flags.cpp), one message per flag.
  o.max_input_bytes = static_cast<uint64_t>(f.get_int("max-input-bytes"));
  o.max_sentences = f.get_int("max-sentences");
  o.seed = static_cast<uint32_t>(f.get_int("seed"));
  o.threads = static_cast<int>(f.get_int("threads"));
  // Checked before the corpus is read: a directory, FIFO or unwritable place is refused at once.
  // The directories that makes are removed again when the training is refused (a bad
  // --vocab-size, an --out inside --source, a corpus without text): nothing is left behind.
  std::vector<std::string> made;  // deepest first
  for (std::string d = o.out_path.substr(0, o.out_path.find_last_of('/') + 1); !d.empty();) {
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    if (d == "/" || d == "." || path_kind(d) != PathKind::kMissing) break;
    made.push_back(d);
    d = d.substr(0, d.find_last_of('/') + 1);
  }
  output_file_prepare(o.out_path, "longnet tokenizer train --out");
  o.verbose = f.get_switch("verbose");
  const auto t0 = std::chrono::steady_clock::now();
  TokenizerTrainSummary s;
  try {
    s = tokenizer_train_explained(o);
  } catch (...) {
    for (const auto& d : made) ::rmdir(d.c_str());  // (only while empty)
    throw;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (s.invalid_utf8_bytes > 0)  // (on stderr, as data build's and encode's)
    std::cerr << "tokenizer train: warning: " << s.invalid_utf8_bytes
              << " byte(s) of the sources are not UTF-8 (the first in '" << s.first_invalid_utf8
              << "'); SentencePiece reads each as U+FFFD, so the tokenizer learned that "
                 "character for them. Convert those files to UTF-8 (iconv -f latin1 -t utf-8)"
              << std::endl;
  std::cout << "tokenizer train: " << o.out_path << ": vocabulary " << o.vocab_size << ", from "
            << s.files_sampled << " of " << s.files_listed << " files, " << s.documents
            << " documents, " << s.sentences << " lines, " << s.text_bytes / 1000000.0
            << " MB of text"
            << (s.bad_lines > 0
                    ? ", " + std::to_string(s.bad_lines) + " malformed JSON lines skipped"
                    : std::string())
            << ", " << secs << " s; " << s.content_hash << std::endl;
  return 0;
}

int tokenizer_encode_command(const std::vector<std::string>& args) {
  CliFlags f("tokenizer encode");
  flags_tokenizer_encode(f);
  f.parse(args);
  if (help_print(f, "encode --tokenizer SPEC < text",
                 "  Prints the ids of the text on stdin, space-separated (special-token strings "
                 "are plain text).\n  Text over 1 MiB is tokenized in pieces cut where the "
                 "tokenizer splits anyway (the end of a tiktoken pre-token; before a space "
                 "between words for SentencePiece), as longnet data build cuts it: the ids are "
                 "the whole text's unless one pre-token or word is longer than 1 MiB.\n"))
    return 0;
  no_positional(f, "encode");
  auto tok = tokenizer_from_flags(f, "encode");
  stdin_check("encode");
  // stdin is read and tokenized in pieces (Tokenizer::piece_length, as data build cuts its
  // units), so memory stays bounded whatever the input and the tokenizer.
  std::string text;
  bool eof = false, after_cut = false;
  uint64_t bytes = 0, count = 0;
  // SentencePiece reads bytes that are no UTF-8 as U+FFFD: counted, for a warning.
  const bool lossy_utf8 = tok->kind() == "sentencepiece";
  size_t invalid_utf8 = 0;
  double secs = 0;
  std::vector<uint32_t> ids;
  std::string out;
  char num[16];
  while (true) {
    while (!eof && text.size() < 2 * kTextPieceBytes) eof = !stdin_read_some(text, bytes, "encode");
    if (text.empty()) break;
    const size_t len = tok->piece_length(text, kTextPieceBytes);
    const auto t0 = std::chrono::steady_clock::now();
    ids.clear();
    const std::string_view piece(text.data(), len);
    tok->encode_piece(piece, after_cut, ids);
    if (lossy_utf8) invalid_utf8 += utf8_invalid_bytes(piece);
    after_cut = true;
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    text.erase(0, len);
    out.clear();
    for (uint32_t id : ids) {
      if (count++) out.push_back(' ');
      const auto r = std::to_chars(num, num + sizeof(num), id);
      out.append(num, r.ptr);
    }
    if (!stdout_write(out)) return stdout_closed_note("tokenizer encode"), 0;
  }
  if (!stdout_write("\n")) return stdout_closed_note("tokenizer encode"), 0;
  if (invalid_utf8 > 0)
    std::cerr << "tokenizer encode: warning: " << invalid_utf8
              << " byte(s) of the input are not UTF-8; the SentencePiece tokenizer reads each as "
                 "U+FFFD, so decoding the ids does not give them back (convert the text to "
                 "UTF-8, or use a byte-exact tokenizer: bytes, or tiktoken)"
              << std::endl;
  if (f.get_switch("stats"))
    std::cerr << "tokenizer encode: " << bytes << " bytes -> " << count << " ids in " << secs
              << " s (" << bytes / 1e6 / std::max(secs, 1e-9) << " MB/s, "
              << static_cast<double>(bytes) / std::max<uint64_t>(count, 1) << " bytes per id)"
              << std::endl;
  return 0;
}

int tokenizer_decode_command(const std::vector<std::string>& args) {
  CliFlags f("tokenizer decode");
  flags_tokenizer_decode(f);
  f.parse(args);
  if (help_print(f, "decode --tokenizer SPEC < ids",
                 "  Prints the text of the whitespace-separated ids on stdin (raw bytes, no "
                 "newline added).\n"))
    return 0;
  no_positional(f, "decode");
  auto tok = tokenizer_from_flags(f, "decode");
  stdin_check("decode");
  std::string in = stdin_read_all("decode");
  std::vector<uint32_t> ids;
  const char* p = in.data();
  const char* end = p + in.size();
  // White space of any kind separates ids (a NUL does not: it is an error, shown).
  auto sep = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (p < end) {
    while (p < end && sep(*p)) ++p;
    if (p == end) break;
    const char* q = p;
    while (q < end && !sep(*q)) ++q;
    uint32_t id = 0;
    const auto r = std::from_chars(p, q, id);
    if (r.ec != std::errc() || r.ptr != q) {
      std::string shown;  // printable, so that the message shows what is wrong
      for (const char* c = p; c < q && shown.size() < 40; ++c) {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned char>(*c));
        shown += std::isprint(static_cast<unsigned char>(*c)) ? std::string(1, *c) : hex;
      }
      const bool too_big = r.ec == std::errc::result_out_of_range && r.ptr == q;
      throw std::invalid_argument(
          "longnet tokenizer decode: '" + shown + "' (item " + std::to_string(ids.size() + 1) +
          (too_big ? ") is out of range: ids are below 2^32 (and the tokenizer's vocabulary)"
                   : ") is not an id; give whole numbers separated by spaces"));
    }
    ids.push_back(id);
    p = q;
  }
  std::string().swap(in);  // (the text of the ids is not needed again: its memory goes back)
  // Decoded and written in windows (a ranks file may hold tokens of 100 KB: 4096 ids; and
  // SentencePiece holds some 250 bytes per id it decodes: 65536 ids; the whole could be
  // gigabytes), after a first pass that checks every id, so that a bad one prints nothing.
  const size_t window = tok->kind() == "sentencepiece" ? 65536 : 4096;
  if (!tokenizer_decode_windows(*tok, ids.data(), ids.size(), window,
                                [](const std::string& text) { return stdout_write(text); }))
    return stdout_closed_note("tokenizer decode"), 0;
  return 0;
}

int tokenizer_info_command(const std::vector<std::string>& args) {
  CliFlags f("tokenizer info");
  flags_tokenizer_info(f);
  f.parse(args);
  if (help_print(f, "info --tokenizer SPEC", "  Prints what a tokenizer is.\n")) return 0;
  no_positional(f, "info");
  auto tok = tokenizer_from_flags(f, "info");
  const auto eot = tok->eot_id();
  const std::string loss = tokenizer_loss_example(*tok);
  std::cout << "kind " << tok->kind() << "\nvocab_size " << tok->vocab_size() << "\neot_id "
            << (eot ? std::to_string(*eot) : "none") << "\ncontent_hash " << tok->content_hash()
            << "\nexact "
            << (!loss.empty()                    ? "no: " + loss
                : tok->kind() == "sentencepiece" ? std::string("yes (but U+2581, SentencePiece's "
                                                               "sign for a space, decodes as a "
                                                               "space)")
                                                 : std::string("yes"))
            << "\n";
  return 0;
}

int tokenizer_command(const std::vector<std::string>& args) {
  const std::string usage =
      "usage: longnet tokenizer SUBCOMMAND [flags]   (--help after any subcommand)\n"
      "  train    train a SentencePiece BPE tokenizer on directories, text, JSONL, .gz, .zst\n"
      "  encode   text on stdin -> ids on stdout\n"
      "  decode   ids on stdin -> text on stdout\n"
      "  info     kind, vocabulary size, end-of-text id and content hash of a tokenizer\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "train") return tokenizer_train_command(rest);
  if (args[0] == "encode") return tokenizer_encode_command(rest);
  if (args[0] == "decode") return tokenizer_decode_command(rest);
  if (args[0] == "info") return tokenizer_info_command(rest);
  throw std::invalid_argument("longnet tokenizer: unknown subcommand '" + args[0] +
                              "'; use train, encode, decode or info");
}

}  // namespace longnet
