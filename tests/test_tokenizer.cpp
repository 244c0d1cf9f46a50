// Tokenizers and corpus readers: specs and their errors, the byte tokenizer, tiktoken's merge
// against a plain reference (short and long pieces), malformed ranks files, special tokens,
// SentencePiece training and round trips, and the corpus readers on directories, JSON Lines and
// .gz / .zst files, good, malformed and truncated. Ids against Python tiktoken and sentencepiece
// are compared in test_tokenizer_reference.py. Parts compiled out of the build are skipped.
#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "longnet/cli/tokenizer_command.h"
#include "longnet/core/text.h"
#include "longnet/tests/temp_files.h"
#include "longnet/tests/test_util.h"
#include "longnet/train/corpus.h"
#include "longnet/train/input_stream.h"
#include "longnet/train/sha256.h"
#include "longnet/train/tokenizer.h"
#include "longnet/train/tokenizer_train.h"

namespace longnet {
namespace {

// ---- helpers (POSIX calls: see core/file_util.h on std::filesystem) ---------------------------

using testing::read_file;
using testing::TempDir;
using testing::write_file;

template <typename E = std::runtime_error>
std::string expect_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  return testing::expect_throw<E>(fn, needles);
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(k[(v >> s) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out.push_back(k[(v >> 18) & 63]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? k[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// A ranks file: the 256 bytes at ranks 0..255 (in byte order), then `tokens` in order.
std::string ranks_text(const std::vector<std::string>& tokens) {
  std::string s;
  for (int b = 0; b < 256; ++b)
    s += base64(std::string(1, char(b))) + " " + std::to_string(b) + "\n";
  for (size_t i = 0; i < tokens.size(); ++i)
    s += base64(tokens[i]) + " " + std::to_string(256 + i) + "\n";
  return s;
}

// tiktoken's encoding of one piece, written plainly: the whole piece if it is a token, else
// merge the adjacent pair whose bytes have the lowest rank (leftmost first) until none is left.
std::vector<uint32_t> reference_piece(const std::map<std::string, uint32_t>& ranks,
                                      const std::string& piece) {
  if (auto it = ranks.find(piece); it != ranks.end()) return {it->second};
  std::vector<std::string> parts;
  for (char c : piece) parts.emplace_back(1, c);
  for (;;) {
    size_t best_i = 0;
    uint32_t best = UINT32_MAX;
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      if (auto it = ranks.find(parts[i] + parts[i + 1]); it != ranks.end() && it->second < best) {
        best = it->second;
        best_i = i;
      }
    if (best == UINT32_MAX) break;
    parts[best_i] += parts[best_i + 1];
    parts.erase(parts.begin() + best_i + 1);
  }
  std::vector<uint32_t> ids;
  for (const auto& p : parts) ids.push_back(ranks.at(p));
  return ids;
}

bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

#define SKIP_UNLESS_KIND(kind)                                                               \
  if (!tokenizer_kind_available(kind)) {                                                     \
    expect_error([] { tokenizer_open(std::string(kind) + ":/nonexistent"); },                \
                 {"this build has no", "install"});                                          \
    GTEST_SKIP() << kind << " is compiled out of this build (its error message is checked)"; \
  }

// ---- SHA-256 ----------------------------------------------------------------------------------

TEST(Sha256, MatchesFipsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a', fed in uneven pieces (the block-buffer path).
  Sha256 s;
  const std::string chunk(997, 'a');
  size_t left = 1000000;
  while (left) {
    const size_t n = std::min(left, chunk.size());
    s.update(chunk.data(), n);
    left -= n;
  }
  EXPECT_EQ(s.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ---- specs and the byte tokenizer --------------------------------------------------------------

TEST(Tokenizer, SpecErrorsNameTheProblem) {
  expect_error<std::invalid_argument>([] { tokenizer_open("gpt2"); },
                                      {"unknown tokenizer 'gpt2'", "bytes", "tiktoken:PATH"});
  expect_error<std::invalid_argument>([] { tokenizer_open(""); }, {"unknown tokenizer"});
  expect_error<std::invalid_argument>([] { tokenizer_open("tiktoken"); },
                                      {"tiktoken needs a file"});
  expect_error<std::invalid_argument>([] { tokenizer_open("sentencepiece:"); },
                                      {"sentencepiece needs a file"});
  expect_error<std::invalid_argument>([] { tokenizer_open("bytes:/x"); }, {"takes no file"});
  EXPECT_TRUE(tokenizer_kind_available("bytes"));
  EXPECT_FALSE(tokenizer_kind_available("wordpiece"));
}

TEST(Tokenizer, BytesIsTodaysVocabulary) {
  auto t = tokenizer_open("bytes");
  EXPECT_EQ(t->kind(), "bytes");
  EXPECT_EQ(t->vocab_size(), 256u);
  EXPECT_FALSE(t->eot_id().has_value());
  const std::string text("h\xc3\xa9\0\xff<|endoftext|>", 18);
  const auto ids = t->encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (size_t i = 0; i < text.size(); ++i) EXPECT_EQ(ids[i], uint8_t(text[i]));
  EXPECT_EQ(t->decode(ids), text);
  expect_error<std::out_of_range>([&] { t->decode({65, 256}); }, {"id 256", "position 1"});

  auto e = tokenizer_open("bytes:eot");
  EXPECT_EQ(e->vocab_size(), 257u);
  EXPECT_EQ(e->eot_id(), 256u);
  EXPECT_EQ(e->encode("<|endoftext|>"), t->encode("<|endoftext|>"));  // ordinary text
  EXPECT_EQ(e->decode({104, 256, 105}), "h<|endoftext|>i");
  EXPECT_NE(e->content_hash(), t->content_hash());
  EXPECT_EQ(e->clone()->encode("abc"), e->encode("abc"));
}

// ---- tiktoken -----------------------------------------------------------------------------------

TEST(Tiktoken, MergesLowestRankFirstLeftmostOnTies) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  // "aa" 256, "bc" 257, "ab" 258, "abc" 259 (reachable only as a whole piece).
  write_file(dir / "r.tiktoken", ranks_text({"aa", "bc", "ab", "abc", " the"}));
  auto t = tokenizer_open("tiktoken:" + dir / "r.tiktoken");
  EXPECT_EQ(t->encode("aaa"), (std::vector<uint32_t>{256, 'a'}));  // leftmost pair first
  EXPECT_EQ(t->encode("aaaa"), (std::vector<uint32_t>{256, 256}));
  EXPECT_EQ(t->encode("abc"), (std::vector<uint32_t>{259}));  // whole piece
  // "bc" outranks "ab"; then "a"+"bc" is the token "abc".
  EXPECT_EQ(t->encode("abca"), (std::vector<uint32_t>{259, 'a'}));
  EXPECT_EQ(t->encode("bca"), (std::vector<uint32_t>{257, 'a'}));
  EXPECT_EQ(t->encode(" the"), (std::vector<uint32_t>{260}));
  // Pieces: " the" and "aa" are separate pieces, so no merge crosses the space.
  EXPECT_EQ(t->encode("aa the"), (std::vector<uint32_t>{256, 260}));
  EXPECT_EQ(t->encode(""), std::vector<uint32_t>{});
}

TEST(Tiktoken, ShortAndLongPiecesMatchReference_1000Strings) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  // Random tokens over {a, b, c}: concatenations of earlier ones, in rank order.
  std::mt19937 rng(20);
  std::vector<std::string> tokens;
  std::vector<std::string> pool = {"a", "b", "c"};
  std::map<std::string, uint32_t> ranks;
  for (int b = 0; b < 256; ++b) ranks[std::string(1, char(b))] = b;
  while (tokens.size() < 300) {
    const std::string tok = pool[rng() % pool.size()] + pool[rng() % pool.size()];
    if (tok.size() > 12 || ranks.count(tok)) continue;
    ranks[tok] = static_cast<uint32_t>(256 + tokens.size());
    tokens.push_back(tok);
    pool.push_back(tok);
  }
  write_file(dir / "abc.tiktoken", ranks_text(tokens));
  auto t = tokenizer_open("tiktoken:" + dir / "abc.tiktoken");
  auto copy = t->clone();
  // Around the switch from the scan to the heap (96 bytes), and a few long ones.
  const int lengths[] = {1, 2, 3, 17, 37, 95, 96, 97, 127, 200};
  for (int i = 0; i < 1000; ++i) {
    const int n = i >= 995 ? 2000 : lengths[i % 10];
    std::string s;
    for (int k = 0; k < n; ++k) s.push_back("abc"[rng() % 3]);
    // Letters only: the pre-tokenizer leaves it one piece, so the reference sees what we see.
    const auto want = reference_piece(ranks, s);
    ASSERT_EQ(t->encode(s), want) << "length " << n << ": " << s.substr(0, 80);
    ASSERT_EQ(copy->encode(s), want);  // and again from the cache, in a clone
    ASSERT_EQ(t->decode(want), s);
  }
}

TEST(Tiktoken, SpecialTokensAfterTheRanks) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  write_file(dir / "r.tiktoken", ranks_text({"ab"}));
  auto t = tokenizer_open("tiktoken:" + dir / "r.tiktoken");
  EXPECT_EQ(t->vocab_size(), 257u + 5);
  EXPECT_EQ(t->eot_id(), 257u);
  EXPECT_EQ(t->decode({257, 258, 259, 260, 261}),
            "<|endoftext|><|fim_prefix|><|fim_middle|><|fim_suffix|><|endofprompt|>");
  // In text, a special token is ordinary text.
  const auto ids = t->encode("<|endoftext|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 257u), 0);
  EXPECT_EQ(t->decode(ids), "<|endoftext|>");
  expect_error<std::out_of_range>([&] { t->decode({262}); }, {"id 262", "not a token"});
  EXPECT_EQ(t->content_hash(), "tiktoken:" + sha256_hex(read_file(dir / "r.tiktoken")));
}

TEST(Tiktoken, Cl100kSizedFileGetsCl100kSpecialIds) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  std::vector<std::string> tokens;  // "tok" + i in base 26, letters only (one piece each)
  for (int i = 0; i < 100000; ++i) {
    std::string t = "tok";
    for (int v = i; v; v /= 26) t.push_back(static_cast<char>('a' + v % 26));
    tokens.push_back(t);
  }
  write_file(dir / "cl.tiktoken", ranks_text(tokens));
  auto t = tokenizer_open("tiktoken:" + dir / "cl.tiktoken");
  EXPECT_EQ(t->vocab_size(), 100277u);
  EXPECT_EQ(t->eot_id(), 100257u);
  EXPECT_EQ(t->decode({100257, 100258, 100259, 100260, 100276}),
            "<|endoftext|><|fim_prefix|><|fim_middle|><|fim_suffix|><|endofprompt|>");
  expect_error<std::out_of_range>([&] { t->decode({100256}); }, {"id 100256"});
  EXPECT_EQ(t->encode(tokens.back()), (std::vector<uint32_t>{256 + 99999}));
}

TEST(Tiktoken, AnyBytesRoundTrip) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  write_file(dir / "r.tiktoken", ranks_text({"  ", "\xc3\xa9", "e\xcc", " \xff"}));
  auto t = tokenizer_open("tiktoken:" + dir / "r.tiktoken");
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 200, '\0');
    for (auto& c : s) c = static_cast<char>(i % 2 ? rng() : "ab \n\xc3\xa9\xff\x80"[rng() % 8]);
    ASSERT_EQ(t->decode(t->encode(s)), s) << "case " << i;
  }
  // Long runs (one piece each): spaces, letters, and a run of invalid bytes.
  for (const std::string& s : {std::string(200000, ' '), std::string(200000, 'x'),
                               std::string(5000, '\xff'), std::string(100000, '\n')})
    ASSERT_EQ(t->decode(t->encode(s)), s);
}

TEST(Tiktoken, MalformedRanksFilesNameFileAndLine) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  auto open_text = [&](const std::string& name, const std::string& text) {
    write_file(dir / name, text);
    return [&dir, name] { tokenizer_open("tiktoken:" + dir / name); };
  };
  const std::string good = ranks_text({"ab"});
  expect_error(open_text("empty.tiktoken", ""), {"empty.tiktoken' is empty", "BASE64_TOKEN RANK"});
  expect_error(open_text("blank.tiktoken", "\n\n"), {"is empty"});
  expect_error(open_text("b64.tiktoken", good + "YW*= 257\n"),
               {"b64.tiktoken:258:", "'YW*=' is not valid base64"});
  expect_error(open_text("b64len.tiktoken", good + "YWJ 257\n"), {":258:", "not valid base64"});
  expect_error(open_text("dup_rank.tiktoken", good + base64("xy") + " 256\n"),
               {"dup_rank.tiktoken:258:", "rank 256 is given twice (first on line 257)"});
  expect_error(open_text("dup_tok.tiktoken", good + base64("ab") + " 257\n"),
               {":258:", "token 'ab' is listed twice (rank 256 on line 257)"});
  expect_error(open_text("norank.tiktoken", good + base64("xy") + "\n"),
               {"norank.tiktoken:258:", "no rank"});
  expect_error(open_text("badrank.tiktoken", good + base64("xy") + " 25x\n"),
               {":258:", "'25x' is not a whole number"});
  expect_error(
      open_text("gap.tiktoken", good + base64("xy") + " 258\n"),
      {"gap.tiktoken'",
       "rank 257 is missing: line 258 gives rank 258, past the ranks 0..257 of its 258 tokens"});
  expect_error(open_text("huge.tiktoken", good + base64("xy") + " 999999999\n"),
               {"huge.tiktoken'", "rank 257 is missing: line 258 gives rank 999999999"});
  // A byte without a rank: drop the line for 'q' and renumber nothing (so also a gap): the
  // byte check needs contiguous ranks, so give 'q' bytes' rank to another token.
  std::string no_q = good;
  const std::string q_line = base64("q") + " 113\n";
  no_q.replace(no_q.find(q_line), q_line.size(), base64("zz") + " 113\n");
  expect_error(open_text("noq.tiktoken", no_q), {"no rank for the byte 0x71"});
  expect_error([&] { tokenizer_open("tiktoken:" + dir / "missing.tiktoken"); },
               {"missing.tiktoken' does not exist"});
  // CRLF line ends and blank lines are accepted, as tiktoken's loader accepts them.
  std::string crlf;
  for (char c : good) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  write_file(dir / "crlf.tiktoken", crlf + "\r\n");
  EXPECT_EQ(tokenizer_open("tiktoken:" + dir / "crlf.tiktoken")->encode("ab"),
            (std::vector<uint32_t>{256}));
  // So are lines ended by CR alone and blanks around the fields (split() and splitlines() in
  // tiktoken's loader); a third field is not.
  std::string cr, padded;
  for (char c : good) cr += c == '\n' ? '\r' : c;
  for (char c : good) padded += c == '\n' ? std::string(" \t\n") : std::string(1, c);
  for (const auto& [name, text] : {std::pair{"cr.tiktoken", cr}, {"padded.tiktoken", padded}}) {
    write_file(dir / name, text);
    EXPECT_EQ(tokenizer_open("tiktoken:" + dir / name)->encode("ab"), (std::vector<uint32_t>{256}))
        << name;
  }
  expect_error(open_text("three.tiktoken", good + base64("xy") + " 257 9\n"),
               {"three.tiktoken:258:", "more than two fields"});
  // Blank lines do not raise the ranks a file may claim (nothing is sized by a far rank).
  expect_error(
      open_text("blanks.tiktoken", good + base64("xy") + " 300\n" + std::string(5000, '\n')),
      {"blanks.tiktoken'", "rank 257 is missing: line 258 gives rank 300, past the ranks 0..257"});
  // Ranks that start above 0: the last one is past the count of tokens.
  std::string from1;
  for (int b = 0; b < 256; ++b)
    from1 += base64(std::string(1, static_cast<char>(b))) + " " + std::to_string(b + 1) + "\n";
  expect_error(open_text("from1.tiktoken", from1 + base64("ab") + " 0\n" + base64("cd") + " 258\n"),
               {"from1.tiktoken", "rank 257 is missing: line 258 gives rank 258"});
  expect_error(open_text("from1b.tiktoken", from1 + base64("ab") + " 257\n"),
               {"from1b.tiktoken'", "rank 0 is missing: line 257 gives rank 257"});
}

// ---- SentencePiece ------------------------------------------------------------------------------

TEST(SentencePiece, TrainsOpensAndRoundTrips) {
  SKIP_UNLESS_KIND("sentencepiece");
  TempDir dir;
  std::string text;
  std::mt19937 rng(3);
  const char* syllables[] = {"in",  "re",   "st", "th", "va", "lu", "fo", "(i", " = ", "0;", "}\n",
                             "{\n", "    ", "\t", "ü",  "数", "据", "😀",  "0x", "12",  "ka", "mo"};
  for (int i = 0; i < 40000; ++i) {
    text += syllables[rng() % 22];
    if (rng() % 3 == 0) text += rng() % 5 ? " " : "\n";
  }
  write_file(dir / "src/a.txt", text.substr(0, text.size() / 2));
  write_file(dir / "src/b.txt", text.substr(text.size() / 2));
  TokenizerTrainOptions o;
  o.vocab_size = 400;
  o.sources = {dir / "src"};
  o.out_path = dir / "out/m.model";
  o.threads = 1;
  const auto sum = tokenizer_train(o);
  EXPECT_EQ(sum.files_sampled, 2);
  EXPECT_GT(sum.sentences, 1000);
  auto t = tokenizer_open("sentencepiece:" + o.out_path);
  EXPECT_EQ(t->kind(), "sentencepiece");
  EXPECT_EQ(t->vocab_size(), 400u);
  EXPECT_EQ(t->eot_id(), 2u);  // </s>
  EXPECT_EQ(t->content_hash(), sum.content_hash);
  for (const std::string& s :
       {std::string("int value = 1234;\n\treturn über 数据 😀"),
        std::string("  two  spaces\n\nand \xe2\x82\xac unseen \xf0\x9f\xa6\x80")}) {
    EXPECT_EQ(t->decode(t->encode(s)), s);
    // Streamed one id at a time (generation), the pieces join to the same text: characters
    // stored as byte pieces (the unseen euro sign, the crab) come whole, spaces stay.
    TextStream stream(*t);
    std::string joined;
    for (uint32_t id : t->encode(s)) {
      const std::string piece = stream.add(id);
      EXPECT_EQ(piece.find("\xef\xbf\xbd"), std::string::npos) << "U+FFFD streamed";
      joined += piece;
    }
    EXPECT_EQ(joined + stream.flush(), s);
  }
  // Decoded in windows (the decode command's bounded memory), the texts join to the whole
  // decode: across spaces, byte-fallback characters, end-of-text ids between documents and
  // ids that decode to nothing, at every window size.
  {
    std::vector<uint32_t> ids;
    for (const std::string& doc :
         {text.substr(0, 3000), std::string(" lead \xe2\x82\xac\xf0\x9f\xa6\x80"),
          std::string("\xf0\x9f\xa6\x80\xe2\x82\xac x"), text.substr(5000, 2000)}) {
      const auto part = t->encode(doc);
      ids.insert(ids.end(), part.begin(), part.end());
      ids.push_back(*t->eot_id());
    }
    ids.insert(ids.begin() + 10, {0, 1, 2});  // <unk>, <s>, </s> mid-text
    const std::string whole = t->decode(ids);
    for (size_t window : {1, 2, 3, 7, 64, 100000}) {
      std::string joined;
      EXPECT_TRUE(
          tokenizer_decode_windows(*t, ids.data(), ids.size(), window,
                                   [&](const std::string& x) { return joined += x, true; }));
      EXPECT_EQ(joined, whole) << "window " << window;
    }
    // A long run of byte pieces (characters the model has no piece for) is cut inside too, at
    // character boundaries: windows stay near their size, and the texts still join.
    {
      std::string rare;
      for (int i = 0; i < 300; ++i) {
        const uint32_t c = 0x4e00 + uint32_t(i * 37 % 20000);  // CJK, 3 bytes each in UTF-8
        rare += char(0xe0 | (c >> 12));
        rare += char(0x80 | ((c >> 6) & 0x3f));
        rare += char(0x80 | (c & 0x3f));
        if (i % 50 == 0) rare += "ð¦";  // and a 4-byte one now and then
      }
      const auto run = t->encode(rare);
      ASSERT_GT(run.size(), 900u);  // (byte pieces: one id per byte)
      EXPECT_EQ(t->decode(run), rare);
      for (size_t window : {1, 2, 7, 64}) {
        std::string joined;
        size_t calls = 0;
        EXPECT_TRUE(tokenizer_decode_windows(
            *t, run.data(), run.size(), window,
            [&](const std::string& x) { return joined += x, ++calls, true; }));
        EXPECT_EQ(joined, rare) << "window " << window;
        EXPECT_GE(calls, run.size() / (window + 8)) << "window " << window;
      }
    }
    // A bad id anywhere: refused before any text is given out, at its place in the whole.
    ids.back() = 400;
    int calls = 0;
    expect_error<std::out_of_range>(
        [&] {
          tokenizer_decode_windows(*t, ids.data(), ids.size(), 5,
                                   [&](const std::string&) { return ++calls, true; });
        },
        {"id 400 (at position " + std::to_string(ids.size() - 1) + ")"});
    EXPECT_EQ(calls, 0);
  }
  // Same corpus, same options: the same model.
  o.out_path = dir / "out/m2.model";
  EXPECT_EQ(tokenizer_train(o).content_hash, sum.content_hash);

  // A bounded read: with about a quarter of the text allowed, about a quarter of the files.
  for (int i = 0; i < 40; ++i)
    write_file(dir / ("many/" + std::to_string(i) + ".txt"), text.substr(i * 2000, 2000));
  TokenizerTrainOptions small = o;
  small.sources = {dir / "many"};
  small.vocab_size = 300;
  small.max_input_bytes = 20000;
  small.out_path = dir / "out/small.model";
  const auto part = tokenizer_train(small);
  EXPECT_EQ(part.files_listed, 40);
  EXPECT_GE(part.files_sampled, 3);
  EXPECT_LE(part.files_sampled, 20);
  EXPECT_LE(part.text_bytes, 2 * small.max_input_bytes + 2000);
  // One file larger than the budget (one document): its reading stops at the bound too.
  write_file(dir / "one/big.txt", text.substr(0, 80000));
  small.sources = {dir / "one"};
  small.max_input_bytes = 10000;
  small.out_path = dir / "out/one.model";
  const auto one = tokenizer_train(small);
  EXPECT_EQ(one.files_sampled, 1);
  EXPECT_GE(one.text_bytes, 2 * small.max_input_bytes);
  EXPECT_LE(one.text_bytes, 2 * small.max_input_bytes + 1000);

  write_file(dir / "junk.model", "this is not a model");
  expect_error([&] { tokenizer_open("sentencepiece:" + dir / "junk.model"); },
               {"junk.model' cannot be loaded"});
  // A damaged normalization table (appended: the last normalizer_spec wins) is refused before
  // SentencePiece follows it (it crashed the first encode). Tables of 1 KiB whose root, or a
  // node, points outside, and one whose header claims more than there is.
  std::mt19937 bytes_rng(1);
  for (const auto& [name, header, size] :
       {std::tuple{"root.model", std::string("\x00\x04\x00\x00", 4), size_t(1400)},
        {"short.model", std::string("\x00\x08\x00\x00", 4), size_t(1400)}}) {
    std::string table = header;
    for (size_t i = 0; i < size; ++i) table += static_cast<char>(bytes_rng());
    auto field = [](int number, const std::string& body) {
      std::string out(1, static_cast<char>(number << 3 | 2));
      for (size_t n = body.size();; n >>= 7) {
        out += static_cast<char>((n & 127) | (n > 127 ? 128 : 0));
        if (n <= 127) break;
      }
      return out + body;
    };
    write_file(dir / name, read_file(o.out_path) + field(3, field(2, table)));
    expect_error([&] { tokenizer_open("sentencepiece:" + dir / name); },
                 {"precompiled_charsmap of its normalizer_spec is damaged"});
  }
  // A piece with a NUL inside (appended: pieces is a repeated field 1 of {piece = 1}).
  const std::string nul_piece = std::string("\x0a\x05\x0a\x03", 4) + std::string("a\0b", 3);
  write_file(dir / "nul.model", read_file(o.out_path) + nul_piece);
  expect_error([&] { tokenizer_open("sentencepiece:" + dir / "nul.model"); },
               {"nul.model' is damaged: piece", "holds a NUL character"});
  o.vocab_size = 100;
  expect_error<std::invalid_argument>([&] { tokenizer_train(o); }, {"--vocab-size 100"});
  o.vocab_size = 50000;  // more than this text can fill
  // It names the size that works on this text (without SentencePiece's source location) ...
  expect_error([&] { tokenizer_train(o); },
               {"--vocab-size 50000 is more pieces than this text yields (at most ",
                "or less works on this text"});
  try {
    tokenizer_train(o);
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find(".cc("), std::string::npos) << e.what();
  }
  // ... or, when that is below the 300 a vocabulary needs, that only more text helps.
  write_file(dir / "tiny/t.txt", "abababab\nab\n");
  TokenizerTrainOptions tiny = o;
  tiny.sources = {dir / "tiny"};
  tiny.vocab_size = 400;
  tiny.out_path = dir / "tiny.model";
  expect_error([&] { tokenizer_train(tiny); },
               {"fewer than the 300 a vocabulary needs", "give more, and more varied, text"});
  // When --max-input-bytes left text unread, the message says so (the first error, and the
  // one that names the vocabulary size).
  TokenizerTrainOptions capped = o;
  capped.vocab_size = 2000;
  capped.max_input_bytes = 10;
  expect_error([&] { tokenizer_train(capped); },
               {"only part of the sources was read (--max-input-bytes 10)"});
  try {
    tokenizer_train(o);  // all of this text was read: not said
    ADD_FAILURE() << "a vocabulary of 50000 trained on this text";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find("only part of the sources"), std::string::npos)
        << e.what();
  }
}

// ---- corpus -------------------------------------------------------------------------------------

std::vector<Document> read_all(CorpusReader& r) {
  std::vector<Document> docs;
  Document d;
  while (r.next(d)) docs.push_back(d);
  return docs;
}

// Reading the file at `path` whole fails with a message holding every needle.
void expect_read_error(const std::string& path, const std::vector<std::string>& needles) {
  expect_error(
      [&] {
        CorpusReader r({path});
        read_all(r);
      },
      needles);
}

TEST(Corpus, DirectoryWalkSortedSkipsLinksBinaryLargeAndEmpty) {
  TempDir dir;
  write_file(dir / "src/b.txt", "bee");
  write_file(dir / "src/a/z.c", "int z;");
  write_file(dir / "src/a/y.h", "// y");
  write_file(dir / "src/bin.dat", std::string("\x7f"
                                              "ELF\0\0",
                                              6) +
                                      "rest");
  write_file(dir / "src/empty.txt", "");
  write_file(dir / "src/large.txt", std::string(3000, 'L'));
  ASSERT_EQ(::symlink((dir / "src/b.txt").c_str(), (dir / "src/link.txt").c_str()), 0);
  CorpusOptions o;
  o.max_directory_file_bytes = 2000;
  CorpusReader r({dir / "src"}, o);
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "// y");
  EXPECT_EQ(docs[1].text, "int z;");
  EXPECT_EQ(docs[2].text, "bee");
  EXPECT_EQ(docs[2].where, dir / "src/b.txt");
  EXPECT_EQ(r.summary().binary_files, 1);
  EXPECT_EQ(r.summary().large_files, 1);
  EXPECT_EQ(r.summary().empty_files, 1);
  EXPECT_EQ(r.summary().links, 1);
  // Named explicitly, a binary file is an error and a large one is read.
  expect_error(
      [&] {
        CorpusReader b({dir / "src/bin.dat"}, o);
        read_all(b);
      },
      {"bin.dat' looks binary"});
  CorpusReader l({dir / "src/large.txt"}, o);
  EXPECT_EQ(read_all(l).size(), 1u);
  expect_error([&] { CorpusReader n({dir / "nope"}); }, {"source '", "nope' does not exist"});
}

// Text in UTF-16 or UTF-32 (with or without a byte-order mark) is named with its encoding and
// how to convert it; random bytes and UTF-8 are not taken for it.
TEST(Corpus, WideTextNamedWithItsEncoding) {
  const std::string ascii = "hello wide text, line one\nline two\n";
  auto widen = [&](int unit, bool big_endian, bool mark) {
    std::string out;
    auto put = [&](uint32_t c) {
      for (int i = 0; i < unit; ++i)
        out += char(big_endian ? (c >> (8 * (unit - 1 - i))) & 0xFF : (c >> (8 * i)) & 0xFF);
    };
    if (mark) put(0xFEFF);
    for (unsigned char c : ascii) put(c);
    return out;
  };
  EXPECT_STREQ(wide_text_encoding(widen(2, false, true)), "UTF-16LE");
  EXPECT_STREQ(wide_text_encoding(widen(2, true, true)), "UTF-16BE");
  EXPECT_STREQ(wide_text_encoding(widen(2, false, false)), "UTF-16LE");
  EXPECT_STREQ(wide_text_encoding(widen(2, true, false)), "UTF-16BE");
  EXPECT_STREQ(wide_text_encoding(widen(4, false, true)), "UTF-32LE");
  EXPECT_STREQ(wide_text_encoding(widen(4, true, true)), "UTF-32BE");
  EXPECT_STREQ(wide_text_encoding(widen(4, false, false)), "UTF-32LE");
  EXPECT_STREQ(wide_text_encoding(widen(4, true, false)), "UTF-32BE");
  EXPECT_EQ(wide_text_encoding(ascii), nullptr);
  EXPECT_EQ(wide_text_encoding(std::string("\x7f"
                                           "ELF\0\0\0\0\0\0\0\0",
                                           12)),
            nullptr);
  EXPECT_EQ(wide_text_encoding(std::string(64, '\0')), nullptr);
  EXPECT_EQ(wide_text_encoding(""), nullptr);

  TempDir dir;
  write_file(dir / "src/wide.txt", widen(2, false, true));
  write_file(dir / "src/b.txt", "bee");
  write_file(dir / "w32.txt", widen(4, true, false));
  write_file(dir / "w.jsonl", widen(2, true, true));
  CorpusReader r({dir / "src"});
  EXPECT_EQ(read_all(r).size(), 1u);
  EXPECT_EQ(r.summary().binary_files, 1);
  EXPECT_EQ(r.summary().wide_text_files, 1);
  expect_error(
      [&] {
        CorpusReader b({dir / "w32.txt"});
        read_all(b);
      },
      {"w32.txt' looks like UTF-32BE text", "iconv -f UTF-32BE -t UTF-8"});
  expect_error(
      [&] {
        CorpusReader b({dir / "w.jsonl"});
        read_all(b);
      },
      {"w.jsonl' looks like UTF-16BE text"});
  // JSON Lines in UTF-16LE without a mark whose first line is blank: named by the encoding too
  // (its second line, read alone, would be UTF-16BE-looking invalid JSON).
  std::string lines;
  for (unsigned char c : std::string("\n{\"text\": \"one\"}\n{\"text\": \"two\"}\n"))
    lines += {char(c), '\0'};
  write_file(dir / "blank.jsonl", lines);
  expect_error(
      [&] {
        CorpusReader b({dir / "blank.jsonl"});
        read_all(b);
      },
      {"blank.jsonl' looks like UTF-16LE text"});
}

// A directory of nothing but links, FIFOs or over-long paths says what it passed over.
TEST(Corpus, DirectoryOfNoRegularFilesSaysWhatWasPassedOver) {
  TempDir dir;
  ASSERT_EQ(::mkdir((dir / "src").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir / "src/sub").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("loop", (dir / "src/loop").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir / "src/sub/fifo").c_str(), 0600), 0);
  expect_error([&] { CorpusReader r({dir / "src"}); },
               {"directory '", "holds no regular files", "1 link(s), not followed",
                "1 FIFO(s), socket(s) or device(s)"});
}

// A file changed after the sources were listed, or cut while it is read, is an error naming
// it: never a torn document (a prefix of the old text) in a build that says it succeeded.
TEST(Corpus, FilesChangedWhileReadAreErrors) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 200000; ++i) text += "line " + std::to_string(i) + "\n";
  write_file(dir / "a.txt", text);
  {
    CorpusReader r({dir / "a.txt"});  // listed now
    write_file(dir / "a.txt", text + "more\n");
    expect_error([&] { read_all(r); },
                 {"a.txt' changed since the sources were listed (" + std::to_string(text.size()) +
                  " bytes then, " + std::to_string(text.size() + 5) + " now)"});
  }
  write_file(dir / "a.txt", text);
  CorpusOptions o;
  o.max_document_bytes = 4096;  // read in parts: the file is open between them
  CorpusReader r({dir / "a.txt"}, o);
  Document doc;
  ASSERT_TRUE(r.next(doc));
  ASSERT_EQ(::truncate((dir / "a.txt").c_str(), 100), 0);
  expect_error(
      [&] {
        while (r.next(doc)) {
        }
      },
      {"a.txt': shrank while it was read (" + std::to_string(text.size()) +
       " bytes when opened, 100 now)"});
}

TEST(Corpus, DirectoriesNestedPastPathMaxAreSkipped) {
  TempDir dir;
  write_file(dir / "src/a.txt", "kept");
  // 24 levels of 200-byte names (past PATH_MAX, 4096), made by steps relative to a descriptor.
  const std::string name(200, 'd');
  int fd = ::open((dir / "src").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 24 && fd >= 0; ++i) {
    ASSERT_EQ(::mkdirat(fd, name.c_str(), 0755), 0);
    const int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    ::close(fd);
    fd = next;
  }
  ASSERT_GE(fd, 0);
  const int f = ::openat(fd, "f.txt", O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(f, 0);
  ASSERT_EQ(::write(f, "deep", 4), 4);
  ::close(f);
  ::close(fd);
  {
    CorpusReader r({dir / "src"});
    const auto docs = read_all(r);
    ASSERT_EQ(docs.size(), 1u);
    EXPECT_EQ(docs[0].text, "kept");
    EXPECT_EQ(r.summary().long_paths, 1);
  }
  // (std::filesystem cannot remove what no path names; rm walks by descriptors)
  EXPECT_EQ(std::system(("rm -rf '" + dir / "src" + "'").c_str()), 0);
}

// A NUL byte anywhere in a text file, not only in its first 8 KiB: a file in a directory is
// skipped as binary, a file named or already partly read is an error naming the byte.
// A UTF-8 byte-order mark at the start of a text file is no part of its text (a mark alone is
// an empty file); one further on is text.
TEST(Corpus, TextFileByteOrderMarkIsDropped) {
  TempDir dir;
  write_file(dir / "src/a.txt", "\xEF\xBB\xBFhello \xEF\xBB\xBF");
  write_file(dir / "src/b.txt", "\xEF\xBB\xBF");
  CorpusReader r({dir / "src"});
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "hello \xEF\xBB\xBF");
  EXPECT_EQ(r.summary().empty_files, 1);
}

TEST(Corpus, NulBytesPastTheHeadAreBinary) {
  TempDir dir;
  std::string text(100000, 'a');
  text[70000] = '\0';
  write_file(dir / "src/tail.txt", text);
  write_file(dir / "src/ok.txt", "fine");
  CorpusReader r({dir / "src"});
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "fine");
  EXPECT_EQ(r.summary().binary_files, 1);
  expect_error(
      [&] {
        CorpusReader named({dir / "src/tail.txt"});
        read_all(named);
      },
      {"tail.txt' looks binary (a NUL byte at byte 70000 of its text)"});
  CorpusOptions parts;
  parts.max_document_bytes = 40000;  // the first part is returned before the NUL is read
  expect_error(
      [&] {
        CorpusReader split({dir / "src"}, parts);
        read_all(split);
      },
      {"a NUL byte at byte 70000 of its text, after text already read",
       "move it out of the directory"});
}

// Where text_piece_length cuts: before a single space between two non-blank bytes (every
// tokenizer here starts a piece there), else after a newline before a non-blank byte, else at a
// UTF-8 boundary; never past `max`, never before its half.
bool clean_cut(const std::string& before, const std::string& after) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  if (before.empty() || after.empty()) return false;
  if (after[0] == ' ' && !blank(before.back()) && after.size() > 1 && !blank(after[1])) return true;
  return before.back() == '\n' && !blank(after[0]);
}

TEST(TextPieces, CutWhereTheTokenizersSplit) {
  const size_t P = kTextPieceBytes;
  auto repeat = [](const std::string& unit, size_t bytes) {
    std::string s;
    while (s.size() < bytes) s += unit;
    return s;
  };
  EXPECT_EQ(text_piece_length("short text", 0), 10u);
  EXPECT_EQ(text_piece_length("short text", 6), 4u);
  for (const std::string unit : {"abc ", "a ", "x\n\n\n", "x  y\n", "\xc3\xa9", "  \t\n"}) {
    const std::string text = repeat(unit, 3 * P + 7);
    for (size_t off = 0, parts = 0; off < text.size(); ++parts) {
      const size_t n = text_piece_length(text, off);
      ASSERT_LE(n, P);
      ASSERT_GT(n, 0u);
      if (off + n < text.size()) {
        ASSERT_GE(n, P / 2);
        const std::string before = text.substr(off, n), after = text.substr(off + n, 2);
        // Texts with a word boundary are cut at one; the others at a UTF-8 boundary.
        if (unit != "\xc3\xa9" && unit != "  \t\n") {
          EXPECT_TRUE(clean_cut(before, after)) << "unit '" << unit << "' part " << parts;
        }
        EXPECT_NE(uint8_t(after[0]) & 0xC0, 0x80);
      }
      off += n;
    }
  }
}

// A text tokenized in the pieces piece_length cuts (the first by encode_append, the others by
// encode_after_cut), as data build and tokenizer encode do.
std::vector<uint32_t> encode_in_pieces(const Tokenizer& t, const std::string& text, size_t max) {
  std::vector<uint32_t> ids;
  for (size_t off = 0; off < text.size();) {
    const size_t n = t.piece_length(std::string_view(text).substr(off), max);
    EXPECT_GT(n, 0u);
    EXPECT_LE(n, max);
    const std::string_view piece(text.data() + off, n);
    if (off == 0)
      t.encode_append(piece, ids);
    else
      t.encode_after_cut(piece, ids);
    off += n;
  }
  return ids;
}

TEST(TextPieces, TiktokenCutsGiveTheWholeTextsIds) {
  SKIP_UNLESS_KIND("tiktoken");
  TempDir dir;
  write_file(dir / "r.tiktoken", ranks_text({"11", "111", "  ", "ab", " ab", "\t\t", "\n\n"}));
  auto t = tokenizer_open("tiktoken:" + dir / "r.tiktoken");
  auto repeat = [](const std::string& unit, size_t bytes) {
    std::string s;
    while (s.size() < bytes) s += unit;
    return s;
  };
  // Runs that only the pre-tokenizer cuts exactly (digits in threes, two spaces before a word,
  // tabs), and random text of short pre-tokens with bytes that are not UTF-8 among them.
  std::vector<std::string> texts = {repeat("1", 5003), repeat("ab  ", 4001), repeat("ab\t", 3001),
                                    repeat("x=1;\n", 3002)};
  std::mt19937 rng(9);
  const char* bits[] = {"a",  "b", " ",    "  ", "\n",   "1", "22", "\xc3\xa9", "\xf0\x9f\x98\x80",
                        "\t", ".", "\xff", "'s", "\r\n", "ab"};
  for (int k = 0; k < 200; ++k) {
    std::string s;
    while (s.size() < 3000) s += bits[rng() % 15];
    texts.push_back(s);
  }
  for (const auto& text : texts)
    for (size_t max : {size_t{64}, size_t{1000}})
      ASSERT_EQ(encode_in_pieces(*t, text, max), t->encode(text))
          << "max " << max << ", text '" << text.substr(0, 40) << "'";
  // Parts of a long document, cut by the same rule, tokenize as the whole.
  const std::string doc = texts[0] + " " + texts[4];
  write_file(dir / "doc.txt", doc);
  CorpusOptions o;
  o.max_document_bytes = 300;
  o.cut_by = t.get();
  CorpusReader r({dir / "doc.txt"}, o);
  std::vector<uint32_t> ids;
  corpus_tokenize(r, *t, [&](const std::vector<uint32_t>& part) {
    ids.insert(ids.end(), part.begin(), part.end());
  });
  EXPECT_GT(r.summary().parts, 10);
  EXPECT_EQ(ids, t->encode(doc));
}

TEST(TokenizerSpec, RecordsAbsolutePaths) {
  EXPECT_EQ(tokenizer_spec_absolute("bytes"), "bytes");
  EXPECT_EQ(tokenizer_spec_absolute("bytes:eot"), "bytes:eot");
  EXPECT_EQ(tokenizer_spec_absolute("tiktoken:/data/x.tiktoken"), "tiktoken:/data/x.tiktoken");
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  const std::string here = std::string(cwd) == "/" ? "" : cwd;
  EXPECT_EQ(tokenizer_spec_absolute("sentencepiece:no_such_dir/../tok.model"),
            "sentencepiece:" + here + "/tok.model");
  EXPECT_EQ(tokenizer_spec_absolute("tiktoken:./x.tiktoken"), "tiktoken:" + here + "/x.tiktoken");
}

TEST(Corpus, LongDocumentsComeInPartsCutWhereTokenizersSplit) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 400; ++i) text += "line " + std::to_string(i) + " \xe2\x82\xac\n";
  text +=
      std::string(700, 'x') + "\xe2\x82\xac\xe2\x82\xac";  // no newline: cut at a UTF-8 boundary
  write_file(dir / "long.txt", text);
  write_file(dir / "short.txt", "short");
  CorpusOptions o;
  o.max_document_bytes = 256;
  CorpusReader r({dir / "long.txt", dir / "short.txt"}, o);
  const auto docs = read_all(r);
  std::string joined;
  size_t i = 0;
  for (; i < docs.size() && docs[i].where == dir / "long.txt"; ++i) {
    EXPECT_LE(docs[i].text.size(), 256u);
    EXPECT_EQ(docs[i].continued, i > 0);
    // Every part starts on a UTF-8 boundary.
    EXPECT_NE(uint8_t(docs[i].text[0]) & 0xC0, 0x80);
    if (joined.size() + docs[i].text.size() < text.size() - 800) {
      EXPECT_TRUE(clean_cut(docs[i].text, text.substr(joined.size() + docs[i].text.size(), 2)))
          << "part " << i;
    }
    joined += docs[i].text;
  }
  EXPECT_EQ(joined, text);
  ASSERT_EQ(docs.size(), i + 1);
  EXPECT_EQ(docs.back().text, "short");
  EXPECT_FALSE(docs.back().continued);
  EXPECT_EQ(r.summary().documents, 2);
  EXPECT_EQ(r.summary().parts, static_cast<int64_t>(i - 1));
}

TEST(Corpus, JsonLinesGoodAndMalformed) {
  if (!compression_available(Compression::kNone)) GTEST_SKIP();
  TempDir dir;
  // A byte-order mark alone on the first line is a blank line, as blank lines are.
  write_file(dir / "bom.jsonl", "\xef\xbb\xbf\r\n{\"text\": \"a\"}\n");
  {
    CorpusReader r({dir / "bom.jsonl"});
    const auto docs = read_all(r);
    ASSERT_EQ(docs.size(), 1u);
    EXPECT_EQ(docs[0].text, "a");
  }
  write_file(dir / "good.jsonl",
             "{\"text\": \"first \\u00e9\\n\", \"id\": 1}\n\n"
             "{\"id\": 2, \"text\": \"second\"}\r\n"
             "{\"text\": \"\"}\n"
             "{\"text\": \"last, no newline\"}");
  CorpusReader r({dir / "good.jsonl"});
  std::vector<Document> docs;
  try {
    docs = read_all(r);
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find("cannot read JSON Lines") != std::string::npos)
      GTEST_SKIP() << e.what();
    throw;
  }
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "first \xc3\xa9\n");
  EXPECT_EQ(docs[0].where, dir / "good.jsonl:1");
  EXPECT_EQ(docs[1].text, "second");
  EXPECT_EQ(docs[1].where, dir / "good.jsonl:3");
  EXPECT_EQ(docs[2].where, dir / "good.jsonl:5");
  EXPECT_EQ(r.summary().empty_documents, 1);
  // Extensions in any case: the same file as X.JSONL is read as JSON Lines, not as text.
  write_file(dir / "UPPER.JSONL", "{\"text\": \"in caps\"}\n");
  CorpusReader upper({dir / "UPPER.JSONL"});
  EXPECT_EQ(read_all(upper).at(0).text, "in caps");
  EXPECT_EQ(compression_from_name("a.JSONL.GZ"), Compression::kGzip);
  EXPECT_EQ(compression_from_name("a.txt.Zst"), Compression::kZstd);
  // Another field.
  write_file(dir / "content.jsonl", "{\"content\": \"c\"}\n");
  CorpusOptions o;
  o.jsonl_field = "content";
  CorpusReader c({dir / "content.jsonl"}, o);
  EXPECT_EQ(read_all(c).at(0).text, "c");

  const std::string ok = "{\"text\": \"fine\"}\n";
  auto bad = [&](const std::string& name, const std::string& line,
                 const std::vector<std::string>& needles) {
    write_file(dir / name, ok + ok + line + "\n" + ok);
    std::vector<std::string> n = needles;
    n.push_back(dir / name + ":3: ");
    expect_error(
        [&] {
          CorpusReader b({dir / name});
          read_all(b);
        },
        n);
  };
  bad("syntax.jsonl", "{\"text\": \"unterminated}", {"not valid JSON"});
  bad("trailing.jsonl", "{\"text\": \"a\"} x", {"not valid JSON"});
  bad("missing.jsonl", "{\"body\": \"a\", \"id\": 3}",
      {"no field \"text\"", "'body', 'id'", "--jsonl-field"});
  bad("number.jsonl", "{\"text\": 42}", {"field \"text\" is a JSON number, not a string"});
  bad("null.jsonl", "{\"text\": null}", {"is a JSON null"});
  bad("array.jsonl", "[\"text\"]", {"a JSON array, not an object"});
  bad("utf8.jsonl", "{\"text\": \"\xff\"}", {"not valid JSON"});
  // A NUL byte: refused with its column, not the line's head taken for the whole line.
  bad("nul.jsonl", std::string("{\"text\": \"a\"}\0{\"text\": \"b\"} junk", 32),
      {"a NUL byte at column 14"});
  // Numbers past double's range are valid JSON: read where the corpus does not use them (other
  // keys given twice too, as without one), refused in the text field, errors at the line's
  // column.
  write_file(dir / "huge.jsonl",
             "{\"text\": \"big\", \"n\": 1e99999, \"m\": 1, \"m\": [2, {\"x\": -1e99999}]}\n");
  CorpusReader h({dir / "huge.jsonl"});
  EXPECT_EQ(read_all(h).at(0).text, "big");
  bad("huge_text.jsonl", "{\"text\": 1e99999}", {"field \"text\" is a JSON number"});
  bad("huge_twice.jsonl", "{\"text\": \"a\", \"n\": 1e99999, \"text\": \"b\"}",
      {"the field \"text\" appears more than once"});
  bad("huge_broken.jsonl", "{\"text\": \"a\", \"n\": 1e99999,}", {"column 28: not valid JSON"});
  CorpusOptions small;
  small.max_document_bytes = 64;
  write_file(dir / "longline.jsonl", ok + "{\"text\": \"" + std::string(100, 'a') + "\"}\n");
  expect_error(
      [&] {
        CorpusReader b({dir / "longline.jsonl"}, small);
        read_all(b);
      },
      {"longline.jsonl:2:", "longer than 64 bytes"});
  // skip_bad_lines: every kind of malformed line is counted and skipped, the good ones read.
  write_file(dir / "mixed.jsonl",
             "{\"text\": \"one\"}\n{broken\n{\"body\": \"x\"}\n"
             "{\"text\": 5}\n[1]\n{\"text\": \"a\", \"n\": 1e99999,}\n" +
                 std::string("{\"text\": \"a\"}\0\n", 15) + "{\"text\": \"two\"}\n");
  expect_error(
      [&] {
        CorpusReader strict({dir / "mixed.jsonl"});
        read_all(strict);
      },
      {"mixed.jsonl:2: not valid JSON", "--skip-bad-lines"});
  CorpusOptions skip;
  skip.skip_bad_lines = true;
  CorpusReader lenient({dir / "mixed.jsonl"}, skip);
  const auto kept = read_all(lenient);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].text, "one");
  EXPECT_EQ(kept[1].text, "two");
  EXPECT_EQ(lenient.summary().bad_lines, 6);
  EXPECT_EQ(lenient.summary().first_bad_line.rfind(dir / "mixed.jsonl:2: not valid JSON", 0), 0u)
      << lenient.summary().first_bad_line;
}

// Compresses `path` to path + suffix with the command-line tool; false if it is missing.
bool compress_with(const std::string& tool, const std::string& path, const std::string& suffix) {
  if (!have_program(tool)) return false;
  const std::string cmd = tool + " -q -c '" + path + "' > '" + path + suffix + "'";
  return std::system(cmd.c_str()) == 0;
}

void truncate_to(const std::string& path, double fraction) {
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(st.st_size * fraction)), 0);
}

void check_compressed(Compression c, const std::string& tool, const std::string& suffix) {
  if (!compression_available(c)) {
    TempDir dir;
    write_file(dir / ("x.txt" + suffix), "whatever");
    expect_error(
        [&] {
          CorpusReader r({dir / ("x.txt" + suffix)});
          read_all(r);
        },
        {"this build cannot read", "install"});
    GTEST_SKIP() << compression_name(c) << " is compiled out (its error message is checked)";
  }
  TempDir dir;
  std::string big;
  std::mt19937 rng(5);
  while (big.size() < 3000000) big += "line " + std::to_string(rng() % 100000) + " of text\n";
  write_file(dir / "big.txt", big);
  write_file(dir / "docs.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\"}\n");
  if (!compress_with(tool, dir / "big.txt", suffix) ||
      !compress_with(tool, dir / "docs.jsonl", suffix))
    GTEST_SKIP() << "no `" << tool << "` program to make test files with";
  {
    CorpusReader r({dir / ("big.txt" + suffix), dir / ("docs.jsonl" + suffix)});
    const auto docs = read_all(r);
    ASSERT_EQ(docs.size(), 3u);
    EXPECT_EQ(docs[0].text, big);
    EXPECT_EQ(docs[1].text, "one");
    EXPECT_EQ(docs[2].where, dir / ("docs.jsonl" + suffix) + ":2");
  }
  {
    // Progress (data build's) counts the file's bytes on disk, never its larger text: read in
    // parts, it grows and stays below the compressed size until the end.
    const uint64_t size = read_file(dir / ("big.txt" + suffix)).size();
    CorpusOptions o;
    o.max_document_bytes = 1 << 16;
    CorpusReader r({dir / ("big.txt" + suffix)}, o);
    Document d;
    uint64_t last = 0, text = 0;
    int64_t parts = 0, early = 0;
    while (r.next(d)) {
      const uint64_t at = r.file_bytes_read();
      EXPECT_GE(at, last);
      EXPECT_LE(at, size);
      text += d.text.size();
      // The share of the file read keeps pace with the share of the text (a compressed block
      // ahead at most), not at the text's size in bytes.
      early += double(at) / double(size) > double(text) / double(big.size()) + 0.1;
      last = at;
      ++parts;
    }
    EXPECT_GT(parts, 20);
    EXPECT_EQ(early, 0) << "file_bytes_read ran ahead of the text read";
    EXPECT_GT(last, size / 2);
  }
  // A zstd file may start with a skippable frame (pzstd writes one): it is stepped over.
  if (c == Compression::kZstd) {
    std::string skippable(
        "\x50\x2a\x4d\x18\x04\x00\x00\x00"
        "wxyz",
        12);
    write_file(dir / "skip.jsonl" + suffix, skippable + read_file(dir / ("docs.jsonl" + suffix)));
    CorpusReader r({dir / "skip.jsonl" + suffix});
    EXPECT_EQ(read_all(r).size(), 2u);
  }
  // Two compressed streams one after the other (cat a.gz b.gz) read as their concatenation.
  write_file(dir / "two" + suffix,
             read_file(dir / ("big.txt" + suffix)) + read_file(dir / ("big.txt" + suffix)));
  {
    CorpusReader r({dir / "two" + suffix});
    EXPECT_EQ(read_all(r).at(0).text, big + big);
  }
  // Truncated: an error naming the file, whatever the cut.
  for (double f : {0.5, 0.99}) {
    write_file(dir / "cut.txt" + suffix, read_file(dir / ("big.txt" + suffix)));
    truncate_to(dir / "cut.txt" + suffix, f);
    expect_error(
        [&] {
          CorpusReader r({dir / "cut.txt" + suffix});
          read_all(r);
        },
        {"cut.txt" + suffix, "truncated"});
  }
  // Corrupt: bytes changed in the middle.
  std::string bytes = read_file(dir / ("big.txt" + suffix));
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 64; ++i) bytes[i] ^= 0x5a;
  write_file(dir / "bad.txt" + suffix, bytes);
  expect_error(
      [&] {
        CorpusReader r({dir / "bad.txt" + suffix});
        read_all(r);
      },
      {"bad.txt" + suffix});
  // Not compressed at all, or empty.
  write_file(dir / "plain.txt" + suffix, "just text");
  expect_error(
      [&] {
        CorpusReader r({dir / "plain.txt" + suffix});
        read_all(r);
      },
      {"plain.txt" + suffix + "' is not a " + compression_name(c) + " file"});
  write_file(dir / "empty.txt" + suffix, "");
  expect_error(
      [&] {
        CorpusReader r({dir / "empty.txt" + suffix});
        read_all(r);
      },
      {"is empty"});
}

TEST(Corpus, GzipGoodTruncatedAndCorrupt) {
  check_compressed(Compression::kGzip, "gzip", ".gz");
  if (!compression_available(Compression::kGzip)) return;
  // Zero padding after the last member ends the file, as `gzip -d` takes it; other bytes there
  // are an error naming the file.
  TempDir dir;
  write_file(dir / "a.txt", "padded text\n");
  if (!compress_with("gzip", dir / "a.txt", ".gz")) GTEST_SKIP() << "no `gzip` program";
  const std::string gz = read_file(dir / "a.txt.gz");
  write_file(dir / "pad.txt.gz", gz + std::string(70000, '\0'));
  CorpusReader r({dir / "pad.txt.gz"});
  EXPECT_EQ(read_all(r).at(0).text, "padded text\n");
  write_file(dir / "junk.txt.gz", gz + std::string(100, '\0') + "junk");
  expect_error(
      [&] {
        CorpusReader j({dir / "junk.txt.gz"});
        read_all(j);
      },
      {"junk.txt.gz", "neither another gzip member nor zero padding"});
  // A header whose flags announce an extra field that is not there (FEXTRA, a length past the
  // file's end), and a file cut inside its header: the header is named, not a cut stream.
  const std::string fextra("\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\x03\xff\xff\x01\x02", 14);
  for (const std::string& head : {fextra, gz.substr(0, 6)}) {
    write_file(dir / "head.txt.gz", head);
    expect_read_error(dir / "head.txt.gz",
                      {"head.txt.gz", "header of the gzip member at byte 0 does not end"});
  }
  // The same for the second member of a file.
  write_file(dir / "head2.txt.gz", gz + fextra);
  expect_read_error(dir / "head2.txt.gz",
                    {"head2.txt.gz", "member at byte " + std::to_string(gz.size())});
}
TEST(Corpus, ZstdGoodTruncatedAndCorrupt) {
  check_compressed(Compression::kZstd, "zstd", ".zst");
  if (!compression_available(Compression::kZstd)) return;
  // A frame whose checksum (its last 4 bytes, zstd --check) does not match is named as such.
  TempDir dir;
  write_file(dir / "a.txt", "checked text\n");
  if (std::system(("zstd -q --check -o " + (dir / "a.txt.zst") + " " + (dir / "a.txt")).c_str()) !=
      0)
    GTEST_SKIP() << "no `zstd` program";
  std::string bytes = read_file(dir / "a.txt.zst");
  bytes[bytes.size() - 1] ^= 0x01;
  write_file(dir / "sum.txt.zst", bytes);
  expect_read_error(dir / "sum.txt.zst", {"sum.txt.zst", "checksum does not match"});
}

TEST(Corpus, TokenizeSeparatesDocumentsWithEndOfText) {
  TempDir dir;
  write_file(dir / "src/a.txt", "ab");
  write_file(dir / "src/b.txt", "cd");
  auto collect = [&](const std::string& spec) {
    CorpusReader r({dir / "src"});
    std::vector<uint32_t> all;
    corpus_tokenize(r, *tokenizer_open(spec), [&](const std::vector<uint32_t>& ids) {
      all.insert(all.end(), ids.begin(), ids.end());
    });
    return all;
  };
  // bytes: files joined by '\n', as `data build` joins them.
  EXPECT_EQ(collect("bytes"), (std::vector<uint32_t>{'a', 'b', '\n', 'c', 'd'}));
  EXPECT_EQ(collect("bytes:eot"), (std::vector<uint32_t>{'a', 'b', 256, 'c', 'd'}));
}

// ---- the command
// ----------------------------------------------------------------------------------

TEST(TokenizerCommand, HelpAndFlagErrors) {
  EXPECT_EQ(tokenizer_command({"--help"}), 0);
  EXPECT_EQ(tokenizer_command({}), 2);
  EXPECT_EQ(tokenizer_command({"encode", "--help"}), 0);
  EXPECT_EQ(tokenizer_command({"decode", "--help"}), 0);
  EXPECT_EQ(tokenizer_command({"train", "--help"}), 0);
  expect_error<std::invalid_argument>([] { tokenizer_command({"split"}); },
                                      {"unknown subcommand 'split'"});
  expect_error<std::invalid_argument>([] { tokenizer_command({"encode"}); },
                                      {"--tokenizer is required"});
  expect_error<std::invalid_argument>(
      [] {
        tokenizer_command({"encode", "--bogus", "1"});
      },
      {"unknown flag --bogus"});
  expect_error<std::invalid_argument>(
      [] {
        tokenizer_command({"train", "--vocab-size", "1000"});
      },
      {"needs --vocab-size V, --source PATH and --out"});
}

}  // namespace
}  // namespace longnet
