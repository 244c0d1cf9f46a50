// Tokenizers: text <-> token ids, chosen by a spec string KIND[:PATH] so that a config or a
// command line names one in a word. Which kinds a build has depends on the libraries found at
// configure time (cmake/longnet_tokenizers.cmake); asking for a missing one says what to install.
//
//   spec                 ids                                           end-of-text
//   bytes                the bytes of the text, vocabulary 256         none (today's token files)
//   bytes:eot            the same, vocabulary 257                      256
//   tiktoken:PATH        a .tiktoken ranks file, cl100k_base's         <|endoftext|> (see below)
//                        pre-tokenizer, byte-pair merges as tiktoken
//   sentencepiece:PATH   a SentencePiece .model file                   the model's </s>, if any
//
// tiktoken special tokens: a ranks file of exactly 100,256 ranks is taken as cl100k_base and
// gets cl100k's ids: <|endoftext|> 100257, <|fim_prefix|> 100258, <|fim_middle|> 100259,
// <|fim_suffix|> 100260, <|endofprompt|> 100276 (vocabulary 100,277). Any other ranks file of
// n ranks gets the same five, in that order, at n, n+1, ..., n+4 (vocabulary n + 5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace longnet {

// Long texts are tokenized in pieces of at most kTextPieceBytes (a tokenizer's memory grows with
// its input: SentencePiece's by ~200 bytes per byte): `data build`'s units and `tokenizer
// encode`'s pieces alike, so both give the same ids for the same text.
constexpr size_t kTextPieceBytes = size_t{1} << 20;

// The length of the piece of `text` that starts at `off`, when no tokenizer says where to cut
// (Tokenizer::piece_length does; this is its default and its last resort): the rest, if at most
// `max`; else a cut in the second half of max bytes: before the last single space between two
// non-blank bytes; else after the last newline followed by a non-blank byte; else at a UTF-8
// boundary.
size_t text_piece_length(std::string_view text, size_t off, size_t max = kTextPieceBytes);

// One object serves one thread at a time; clone() gives another thread its own copy, sharing
// the read-only model.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of ordinary text: special-token strings in it ("<|endoftext|>") are encoded as
  // plain text, as tiktoken's encode_ordinary does. Any bytes are accepted; for tiktoken, bytes
  // that are not valid UTF-8 are kept (as byte tokens) so that decode(encode(x)) == x always.
  std::vector<uint32_t> encode(std::string_view text) const {
    std::vector<uint32_t> ids;
    encode_append(text, ids);
    return ids;
  }
  // Appends the ids of `text` to `out`.
  virtual void encode_append(std::string_view text, std::vector<uint32_t>& out) const = 0;

  // Long texts are tokenized in pieces (bounded memory): the length of the first piece of
  // `text`, whose end is an end of the text (or a cut this function made). The whole text if it
  // has at most `max` bytes; else a cut within max bytes where the ids of the two sides, the
  // second through encode_after_cut, are the whole text's (for tiktoken: the end of a
  // pre-tokenizer match found without looking past max; for SentencePiece: before a space
  // between two words, where the model splits words). A text with no such cut within max bytes
  // (one pre-token, or a SentencePiece word, longer than that) is cut at a UTF-8 boundary near
  // max, where ids may differ from the whole text's.
  virtual size_t piece_length(std::string_view text, size_t max) const {
    return text_piece_length(text, 0, max);
  }
  // Appends the ids of a piece that starts at a cut made by piece_length.
  virtual void encode_after_cut(std::string_view piece, std::vector<uint32_t>& out) const {
    encode_append(piece, out);
  }
  // Appends the ids of one piece of a longer text: the first (after_cut false) or one after a
  // cut made by piece_length.
  void encode_piece(std::string_view piece, bool after_cut, std::vector<uint32_t>& out) const {
    if (after_cut)
      encode_after_cut(piece, out);
    else
      encode_append(piece, out);
  }

  // The bytes of `ids` (special tokens as their text). The result need not be valid UTF-8.
  // Throws std::out_of_range naming an id that is not a token of this tokenizer.
  virtual std::string decode(const uint32_t* ids, size_t count) const = 0;
  std::string decode(const std::vector<uint32_t>& ids) const {
    return decode(ids.data(), ids.size());
  }

  // Every id is below vocab_size() (some ids below it may be unused, as cl100k's 100256).
  virtual uint32_t vocab_size() const = 0;
  // The end-of-text id that separates documents, if the tokenizer has one.
  virtual std::optional<uint32_t> eot_id() const = 0;
  // "bytes", "tiktoken" or "sentencepiece".
  virtual std::string kind() const = 0;
  // The spec it was opened with, e.g. "tiktoken:/data/cl100k_base.tiktoken".
  virtual std::string spec() const = 0;
  // Equal strings <=> the same ids for every text: "KIND:SHA256" with the SHA-256 of the model
  // file as `sha256sum` prints it ("bytes" and "bytes:eot" for the byte kinds).
  virtual std::string content_hash() const = 0;

  virtual std::unique_ptr<Tokenizer> clone() const = 0;
};

// The text of ids that come one at a time (generation), printed as it grows. Byte-level and
// tiktoken text is the concatenation of the tokens' bytes; SentencePiece's is not (its decode
// joins byte-fallback pieces into characters, printing U+FFFD for a piece alone, and drops a
// dummy-prefix space at the start of a text). So there the text a token adds is the decode of
// the held tokens with a few printed ones before them, less the decode of those few, given out
// once it no longer ends in an incomplete character. The pieces given out join to decode(all).
class TextStream {
 public:
  // `context`: ids the text follows (a prompt), not given out; SentencePiece drops a space at
  // the start of a text (a dummy prefix), which after them is kept.
  explicit TextStream(const Tokenizer& tokenizer, const std::vector<uint32_t>& context = {});
  // The text to print after `id` ("" while held back).
  std::string add(uint32_t id);
  // The text still held back (at the end of generation).
  std::string flush();

 private:
  std::string pending(bool final);
  static constexpr size_t kContext = 4;  // printed ids decoded again before the held ones
  const Tokenizer& tokenizer_;
  const bool joined_;          // the text is the tokens' bytes joined
  std::vector<uint32_t> ids_;  // (SentencePiece) the last printed ones, then the held ones
  size_t printed_ = 0;         // of ids_, those whose text is given out
};

// The ids between two documents of a corpus: the end-of-text id, else the ids of "\n" (empty
// for a tokenizer that has no end-of-text id and normalises newlines away: documents then
// follow one another with no boundary).
std::vector<uint32_t> document_separator(const Tokenizer& tokenizer);

// tokenizer.decode(ids, n) in windows of about `window` ids, each window's text given to `out`
// in order (out returning false stops; then false is returned): the texts joined are the whole
// decode, in memory bounded by the window (SentencePiece holds some 250 bytes per id it decodes).
// SentencePiece windows are cut only between two ids that each decode alone to text (not a byte
// of a longer character, not a control id), or inside a run of byte pieces (text in a script
// the model has no pieces for) where the ids around the cut decode to the same text cut or not,
// and decoded after the id before the cut, so a space its decode drops at the start of a text
// is kept. Ids are checked
// first: a bad one throws std::out_of_range, at its position in the whole, before any text is
// given out.
bool tokenizer_decode_windows(const Tokenizer& tokenizer, const uint32_t* ids, size_t n,
                              size_t window, const std::function<bool(const std::string&)>& out);

// Opens a tokenizer from its spec (table above). Throws std::invalid_argument for an unknown
// kind or a missing PATH, and std::runtime_error naming the file (and line) when the file is
// missing, unreadable or malformed, or when this build lacks the kind (saying what to install).
std::unique_ptr<Tokenizer> tokenizer_open(const std::string& spec);
// The spec's form alone (a known kind, a file where one is needed), without opening anything:
// throws std::invalid_argument as tokenizer_open does.
void tokenizer_spec_check(const std::string& spec);

// "" when decode(encode(x)) == x for a probe text of code (tabs, newlines, space runs, UTF-8);
// else what it loses, e.g. "'\\tint x;\\n' comes back as 'int x;'": a SentencePiece model made
// elsewhere may normalise text or lack byte fallback (longnet tokenizer train's never do).
std::string tokenizer_loss_example(const Tokenizer& tok);

// Whether this build has `kind` ("bytes", "tiktoken", "sentencepiece").
bool tokenizer_kind_available(const std::string& kind);

// The spec with its file as an absolute path ("tiktoken:tok/x.tiktoken" run in /data:
// "tiktoken:/data/tok/x.tiktoken"), for records that are read from other directories (a dataset's
// manifest, a checkpoint). Other specs as they are.
std::string tokenizer_spec_absolute(const std::string& spec);

}  // namespace longnet
