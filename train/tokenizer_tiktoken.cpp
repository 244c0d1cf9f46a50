// tiktoken-compatible BPE (see tokenizer.h): a .tiktoken ranks file, cl100k_base's pre-tokenizer
// pattern through PCRE2, then tiktoken's merge of each piece (the adjacent pair whose bytes have
// the lowest rank first, leftmost on ties), so that ids equal Python tiktoken's.
//
// Speed: ranks live in one open-addressing table over a byte arena (a lookup never allocates),
// pieces that need merging are cached, and long pieces merge through a heap (n log n) instead of
// tiktoken's rescans (n^2), with the same result.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "longnet/core/text.h"
#include "longnet/train/sha256.h"
#include "longnet/train/tokenizer_kinds.h"

#include "longnet/longnet_tokenizer_config.h"

#if LONGNET_WITH_TIKTOKEN
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#if PCRE2_MAJOR < 10 || (PCRE2_MAJOR == 10 && PCRE2_MINOR < 34)
#error "longnet's tiktoken needs PCRE2 10.34 or newer (PCRE2_MATCH_INVALID_UTF)"
#endif
#endif

namespace longnet {

#if !LONGNET_WITH_TIKTOKEN

bool tiktoken_available() {
  return false;
}
std::unique_ptr<Tokenizer> tiktoken_open(const std::string& path) {
  throw std::runtime_error("tokenizer tiktoken:" + path +
                           ": this build has no tiktoken support: install libpcre2-dev "
                           "(PCRE2 >= 10.34) and reconfigure (cmake -DLONGNET_TIKTOKEN=ON)");
}

#else

bool tiktoken_available() {
  return true;
}

namespace {

// cl100k_base's pattern as tiktoken ships it (tiktoken_ext/openai_public.py), with \s spelled
// out as Unicode White_Space: under UCP, PCRE2's \s also takes U+180E, which tiktoken's regex
// engine does not. `$` is the end of the text (PCRE2_DOLLAR_ENDONLY), as in tiktoken.
// \p{L} and \p{N} follow PCRE2's Unicode tables (14.0 in Debian 12's PCRE2 10.42): a letter
// first assigned in a later Unicode (CJK extension H, Kawi, ...) is not one here but is one for
// tiktoken, so text holding such letters may split differently until PCRE2 is newer.
#define LN_WS                                                                              \
  "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
  "\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kCl100kPattern =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^" LN_WS
    "\\p{L}\\p{N}]++[\\r\\n]*+|[" LN_WS "]++$|[" LN_WS "]*[\\r\\n]|[" LN_WS "]+(?![^" LN_WS
    "])|[" LN_WS "]";
#undef LN_WS

constexpr uint32_t kNoRank = UINT32_MAX;
constexpr uint32_t kCl100kRanks = 100256;
constexpr size_t kShortPiece = 96;         // longer pieces merge through a heap
constexpr size_t kCachePiece = 256;        // longer pieces are not cached
constexpr size_t kCacheEntries = 1 << 16;  // the cache is emptied when it holds this many

struct SpecialToken {
  const char* text;
  uint32_t cl100k_id;
};
constexpr SpecialToken kSpecials[] = {{"<|endoftext|>", 100257},
                                      {"<|fim_prefix|>", 100258},
                                      {"<|fim_middle|>", 100259},
                                      {"<|fim_suffix|>", 100260},
                                      {"<|endofprompt|>", 100276}};

// OpenAI's other ranks files (their SHA-256 as tiktoken checks it): they need other patterns.
struct KnownFile {
  const char* sha256;
  const char* name;
};
constexpr KnownFile kOtherEncodings[] = {
    {"306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930", "r50k_base"},
    {"94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069", "p50k_base"},
    {"446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", "o200k_base"}};

inline uint64_t bytes_hash(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
  }
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 32);
}

// Byte strings -> uint32 values: open addressing (linear probing) over one byte arena.
class ByteTable {
 public:
  void reserve(size_t keys) {
    size_t cap = 16;
    while (cap < keys * 2) cap *= 2;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
  }
  size_t size() const { return count_; }
  size_t arena_bytes() const { return arena_.size(); }
  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    arena_.clear();
    count_ = 0;
  }

  // The value of key p[0, n), or kNoRank.
  uint32_t find(const char* p, size_t n) const {
    const uint64_t h = bytes_hash(p, n);
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.len == 0) return kNoRank;
      if (s.tag == tag && s.len == n && std::memcmp(arena_.data() + s.offset, p, n) == 0)
        return s.value;
    }
  }
  // Inserts a key that is not present yet (the caller checks with find), n > 0; returns the
  // offset of its bytes in arena().
  size_t insert(const char* p, size_t n, uint32_t value) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const uint64_t h = bytes_hash(p, n);
    place(Slot{static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(n),
               static_cast<uint32_t>(h >> 32), value},
          h);
    const size_t offset = arena_.size();
    arena_.append(p, n);
    ++count_;
    return offset;
  }
  const char* arena() const { return arena_.data(); }

 private:
  struct Slot {
    uint32_t offset = 0, len = 0, tag = 0, value = 0;
  };
  void place(const Slot& slot, uint64_t h) {
    for (size_t i = h & mask_;; i = (i + 1) & mask_)
      if (slots_[i].len == 0) {
        slots_[i] = slot;
        return;
      }
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    reserve(std::max<size_t>(16, old.size()));
    for (const Slot& s : old)
      if (s.len) place(s, bytes_hash(arena_.data() + s.offset, s.len));
  }
  std::vector<Slot> slots_ = std::vector<Slot>(16);
  size_t mask_ = 15, count_ = 0;
  std::string arena_;
};

// The immutable part of a tiktoken tokenizer, shared by its clones.
struct TiktokenModel {
  std::string path, sha256;
  ByteTable ranks;                  // token bytes -> rank
  std::vector<uint64_t> rank_span;  // rank -> (offset << 32 | length) in ranks.arena()
  struct Special {
    uint32_t id;
    std::string text;
  };
  std::vector<Special> specials;
  uint32_t n_ranks = 0, vocab = 0, eot = 0;
  pcre2_code* pattern = nullptr;
  bool jit = false;
  ~TiktokenModel() { pcre2_code_free(pattern); }
};

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict standard base64 with padding; false when `in` is not.
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  while (pad < 2 && in[in.size() - 1 - pad] == '=') ++pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    const int v = base64_value(static_cast<unsigned char>(in[i]));
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero padding (canonical encoding).
  return (acc & ((1u << bits) - 1)) == 0;
}

std::shared_ptr<TiktokenModel> tiktoken_model_load(const std::string& path) {
  auto m = std::make_shared<TiktokenModel>();
  m->path = path;
  const std::string data = tokenizer_file_read(path, "tiktoken ranks file");
  m->sha256 = sha256_hex(data);
  for (const auto& known : kOtherEncodings)
    if (m->sha256 == known.sha256)
      throw std::runtime_error("tiktoken ranks file '" + path + "' is OpenAI's " + known.name +
                               ", which needs its own pre-tokenizer pattern; longnet's tiktoken "
                               "reads cl100k_base-style files only (e.g. cl100k_base.tiktoken)");
  const std::string format = "; each line must be 'BASE64_TOKEN RANK' as in cl100k_base.tiktoken";
  if (data.find_first_not_of(" \t\r\n") == std::string::npos)
    throw std::runtime_error("tiktoken ranks file '" + path + "' is empty" + format);

  // Lines as tiktoken's own loader splits them (bytes.splitlines(): \n, \r\n or \r), fields
  // as split() does (runs of blanks, trailing ones ignored); blank lines are skipped.
  auto next_line = [&data](size_t& pos) {
    const size_t end = std::min(data.find_first_of("\r\n", pos), data.size());
    std::string_view line(data.data() + pos, end - pos);
    pos = end + (end + 1 < data.size() && data[end] == '\r' && data[end + 1] == '\n' ? 2 : 1);
    return line;
  };
  auto is_blank = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f'; };
  auto trim = [&is_blank](std::string_view line) {
    while (!line.empty() && is_blank(line.back())) line.remove_suffix(1);
    while (!line.empty() && is_blank(line.front())) line.remove_prefix(1);
    return line;
  };
  // Ranks are 0..n-1 for the n tokens, so none reaches the number of non-blank lines (counted
  // first: a rank claimed far past them is refused before anything is sized by it).
  size_t max_ranks = 0;
  for (size_t pos = 0; pos < data.size();)
    if (!trim(next_line(pos)).empty()) ++max_ranks;
  std::vector<int64_t> rank_line;  // rank -> line that gave it (0: none)
  std::string token;
  m->ranks.reserve(max_ranks);
  int64_t line_no = 0;
  std::optional<std::pair<uint32_t, int64_t> > beyond;  // the first rank past the tokens, its line
  for (size_t pos = 0; pos < data.size();) {
    const std::string_view line = trim(next_line(pos));
    ++line_no;
    if (line.empty()) continue;  // as tiktoken's loader
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    const size_t sp = std::find_if(line.begin(), line.end(), is_blank) - line.begin();
    size_t rank_at = sp;
    while (rank_at < line.size() && is_blank(line[rank_at])) ++rank_at;
    if (sp == line.size())
      throw std::runtime_error(where + "expected 'BASE64_TOKEN RANK', got " + printable(line) +
                               (line.find_first_not_of("0123456789") == std::string_view::npos
                                    ? " (a rank with no token before it)"
                                    : " (no rank)") +
                               format);
    const std::string_view b64 = line.substr(0, sp), rank_text = line.substr(rank_at);
    if (!base64_decode(b64, token))
      throw std::runtime_error(where + printable(b64) + " is not valid base64" + format);
    if (std::find_if(rank_text.begin(), rank_text.end(), is_blank) != rank_text.end())
      throw std::runtime_error(where + "expected 'BASE64_TOKEN RANK', got " + printable(line) +
                               " (more than two fields)" + format);
    if (rank_text.size() > 9 || rank_text.find_first_not_of("0123456789") != std::string_view::npos)
      throw std::runtime_error(where + "rank " + printable(rank_text) +
                               " is not a whole number below 10^9" + format);
    const uint32_t rank = static_cast<uint32_t>(std::stoul(std::string(rank_text)));
    if (rank >= max_ranks) {  // then one below is missing: named after the whole file is read
      if (!beyond) beyond = {rank, line_no};
      continue;
    }
    if (rank >= rank_line.size()) rank_line.resize(rank + 1, 0);
    if (rank_line[rank] != 0)
      throw std::runtime_error(where + "rank " + std::to_string(rank) +
                               " is given twice (first on line " + std::to_string(rank_line[rank]) +
                               ")");
    const uint32_t other = m->ranks.find(token.data(), token.size());
    if (other != kNoRank)
      throw std::runtime_error(where + "token " + printable(token) + " is listed twice (rank " +
                               std::to_string(other) + " on line " +
                               std::to_string(rank_line[other]) + ")");
    rank_line[rank] = line_no;
    if (rank >= m->rank_span.size()) m->rank_span.resize(rank + 1, 0);
    m->rank_span[rank] = static_cast<uint64_t>(m->ranks.insert(token.data(), token.size(), rank))
                             << 32 |
                         token.size();
  }
  if (beyond) {
    uint32_t r = 0;
    while (r < rank_line.size() && rank_line[r] != 0) ++r;
    throw std::runtime_error(
        "tiktoken ranks file '" + path + "': rank " + std::to_string(r) + " is missing: line " +
        std::to_string(beyond->second) + " gives rank " + std::to_string(beyond->first) +
        ", past the ranks 0.." + std::to_string(max_ranks - 1) + " of its " +
        std::to_string(max_ranks) + " tokens (n tokens take the ranks 0..n-1, each once)");
  }
  m->n_ranks = static_cast<uint32_t>(m->ranks.size());
  for (uint32_t r = 0; r < rank_line.size(); ++r)
    if (rank_line[r] == 0)
      throw std::runtime_error("tiktoken ranks file '" + path + "': rank " + std::to_string(r) +
                               " is missing: its " + std::to_string(m->n_ranks) +
                               " tokens have ranks from 0 to " +
                               std::to_string(rank_line.size() - 1) +
                               ", so some in between are left out (n tokens take the ranks "
                               "0..n-1, each once)");
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (m->ranks.find(&c, 1) == kNoRank) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", b);
      throw std::runtime_error("tiktoken ranks file '" + path + "' has no rank for the byte " +
                               hex +
                               "; every single byte needs one, or some texts could not "
                               "be encoded");
    }
  }

  // Special tokens (rule in tokenizer.h).
  const bool cl100k = m->n_ranks == kCl100kRanks;
  uint32_t next = m->n_ranks;
  for (const auto& sp : kSpecials) {
    const uint32_t id = cl100k ? sp.cl100k_id : next++;
    m->specials.push_back({id, sp.text});
    m->vocab = std::max(m->vocab, id + 1);
  }
  m->eot = m->specials.front().id;

  int err = 0;
  PCRE2_SIZE err_offset = 0;
  m->pattern = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kCl100kPattern), PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                             &err, &err_offset, nullptr);
  if (!m->pattern) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw std::runtime_error("tiktoken: PCRE2 cannot compile the cl100k pattern at offset " +
                             std::to_string(err_offset) + ": " +
                             reinterpret_cast<const char*>(msg) +
                             " (is PCRE2 built with Unicode support?)");
  }
  // Without JIT (a PCRE2 built without it) matching is slower but gives the same pieces.
  // (PARTIAL_HARD: piece_length's matching of a window whose end is not the text's.)
  m->jit = pcre2_jit_compile(m->pattern, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD) == 0;
  return m;
}

class TiktokenTokenizer final : public Tokenizer {
 public:
  explicit TiktokenTokenizer(std::shared_ptr<const TiktokenModel> model) : m_(std::move(model)) {
    match_ = pcre2_match_data_create_from_pattern(m_->pattern, nullptr);
    context_ = pcre2_match_context_create(nullptr);
    // Pieces can be long (a run of spaces, a base64 blob); give the JIT room to match them.
    if (m_->jit) {
      jit_stack_ = pcre2_jit_stack_create(32 << 10, 64 << 20, nullptr);
      pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
    }
    if (!match_ || !context_ || (m_->jit && !jit_stack_)) {
      release();
      throw std::bad_alloc();
    }
    cache_.reserve(kCacheEntries);
  }
  ~TiktokenTokenizer() override { release(); }
  TiktokenTokenizer(const TiktokenTokenizer&) = delete;
  TiktokenTokenizer& operator=(const TiktokenTokenizer&) = delete;

  void encode_append(std::string_view text, std::vector<uint32_t>& out) const override {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const size_t n = text.size();
    size_t pos = 0;
    while (pos < n) {
      const int rc = m_->jit ? pcre2_jit_match(m_->pattern, subject, n, pos, 0, match_, context_)
                             : pcre2_match(m_->pattern, subject, n, pos, 0, match_, context_);
      if (rc == PCRE2_ERROR_NOMATCH) {
        // Only bytes that are not valid UTF-8 are left unmatched: keep them as a piece.
        encode_piece(text.data() + pos, n - pos, out);
        break;
      }
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        throw std::runtime_error("tiktoken " + m_->path + ": pre-tokenizing at byte " +
                                 std::to_string(pos) +
                                 " failed: " + reinterpret_cast<const char*>(msg));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match_);
      const size_t start = ov[0], end = ov[1];
      if (start > pos) encode_piece(text.data() + pos, start - pos, out);
      if (end == start) {  // the pattern never matches empty; be safe anyway
        encode_piece(text.data() + start, 1, out);
        pos = start + 1;
        continue;
      }
      encode_piece(text.data() + start, end - start, out);
      pos = end;
    }
  }

  // A match end within max bytes where the text splits into the whole text's pieces. The
  // pattern's matches follow one another from the start (bytes that are not UTF-8 between them
  // are pieces of their own), and one that PCRE2 completes under PARTIAL_HARD never inspected a
  // byte past max, so the whole text has it too. The first piece is then matched on its own,
  // ending at the cut: its last matches are matched again so (a match can peek past its end,
  // and a whitespace run's first match scans the run) and the cut is taken only where they come
  // out the same; the second piece's matches start at the cut as the whole text's do (the
  // pattern looks at nothing before a match).
  size_t piece_length(std::string_view text, size_t max) const override {
    if (text.size() <= max) return text.size();
    // The window ends before a character, not inside one: PCRE2 takes a character cut short
    // for an invalid one, not for the end of the text.
    size_t window = max;
    for (int back = 0; back < 3 && (static_cast<unsigned char>(text[window]) & 0xC0) == 0x80;
         ++back)
      --window;
    constexpr size_t kRecheck = 8;  // matches before the cut matched again, ending at the cut
    constexpr size_t kKeep = 4 * kRecheck;  // the last match ends the tries below can use
    // Match ends (a gap of non-UTF-8 bytes counted as a match); only the last ones are kept, so
    // that a window of many MiB (the corpus reader's parts) costs no memory per match.
    std::vector<size_t> ends;
    for (size_t pos = 0; pos < window;) {
      const size_t end = next_match_end(text, pos, window, PCRE2_PARTIAL_HARD);
      if (end == 0) break;  // partial (would need bytes past max), none, or an error
      if (ends.size() == 64 * kKeep) ends.erase(ends.begin(), ends.end() - kKeep);
      ends.push_back(end);
      pos = end;
    }
    // (Trimmed or not, a try starts at a kept end, or at 0 only while ends[0] is the first.)
    for (size_t tries = 0; tries < 2 * kRecheck && !ends.empty(); ++tries, ends.pop_back()) {
      const size_t cut = ends.back(), j = ends.size() - 1;
      const size_t from = j >= kRecheck ? j - kRecheck : 0;
      size_t pos = from == 0 ? 0 : ends[from - 1], k = from;
      while (pos < cut && k <= j) {
        const size_t end = next_match_end(text, pos, cut, 0);
        if (end != ends[k]) break;
        pos = end;
        ++k;
      }
      if (pos == cut && k == j + 1) return cut;
    }
    return text_piece_length(text, 0, max);
  }

  std::string decode(const uint32_t* ids, size_t count) const override {
    std::string s;
    s.reserve(count * 4);
    const char* arena = m_->ranks.arena();
    for (size_t i = 0; i < count; ++i) {
      const uint32_t id = ids[i];
      if (id < m_->n_ranks) {
        const uint64_t span = m_->rank_span[id];
        s.append(arena + (span >> 32), span & 0xffffffffu);
        continue;
      }
      bool found = false;
      for (const auto& special : m_->specials)
        if (special.id == id) {
          s += special.text;
          found = true;
          break;
        }
      if (!found)
        throw std::out_of_range("tokenizer " + spec() + ": id " + std::to_string(id) +
                                " (at position " + std::to_string(i) +
                                ") is not a token (ranks 0.." + std::to_string(m_->n_ranks - 1) +
                                " and the special ids)");
    }
    return s;
  }

  uint32_t vocab_size() const override { return m_->vocab; }
  std::optional<uint32_t> eot_id() const override { return m_->eot; }
  std::string kind() const override { return "tiktoken"; }
  std::string spec() const override { return "tiktoken:" + m_->path; }
  std::string content_hash() const override { return "tiktoken:" + m_->sha256; }
  std::unique_ptr<Tokenizer> clone() const override {
    return std::make_unique<TiktokenTokenizer>(m_);
  }

 private:
  // Where the piece that starts at `pos` ends when the text ends at `n` (a run of bytes that are
  // not UTF-8 before the next match is a piece of its own, as encode_append takes it); 0 when
  // there is none: no match, a partial one (options PCRE2_PARTIAL_HARD), or an error.
  size_t next_match_end(std::string_view text, size_t pos, size_t n, uint32_t options) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const int rc = m_->jit
                       ? pcre2_jit_match(m_->pattern, subject, n, pos, options, match_, context_)
                       : pcre2_match(m_->pattern, subject, n, pos, options, match_, context_);
    if (rc < 0) return 0;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match_);
    if (ov[0] > pos) return ov[0];  // the gap first
    return ov[1] > ov[0] ? ov[1] : 0;
  }

  void release() {
    if (match_) pcre2_match_data_free(match_);
    if (context_) pcre2_match_context_free(context_);
    if (jit_stack_) pcre2_jit_stack_free(jit_stack_);
    match_ = nullptr;
    context_ = nullptr;
    jit_stack_ = nullptr;
  }

  uint32_t rank_of(const char* p, size_t n) const { return m_->ranks.find(p, n); }

  // One pre-tokenized piece: a token by itself, else merged (as tiktoken's encode_ordinary).
  void encode_piece(const char* p, size_t n, std::vector<uint32_t>& out) const {
    const uint32_t whole = rank_of(p, n);
    if (whole != kNoRank) {
      out.push_back(whole);
      return;
    }
    const bool cacheable = n <= kCachePiece;
    if (cacheable) {
      const uint32_t at = cache_.find(p, n);
      if (at != kNoRank) {
        out.insert(out.end(), cache_ids_.begin() + at + 1,
                   cache_ids_.begin() + at + 1 + cache_ids_[at]);
        return;
      }
    }
    const size_t before = out.size();
    if (n <= kShortPiece) {
      merge_short(p, n, out);
    } else {
      merge_long(p, n, out);
    }
    if (cacheable) {
      if (cache_.size() >= kCacheEntries) {
        cache_.clear();
        cache_ids_.clear();
      }
      cache_.insert(p, n, static_cast<uint32_t>(cache_ids_.size()));
      cache_ids_.push_back(static_cast<uint32_t>(out.size() - before));
      cache_ids_.insert(cache_ids_.end(), out.begin() + before, out.end());
    }
  }

  // tiktoken's _byte_pair_merge: parts (start, rank of the pair starting there); merge the
  // lowest-ranked pair (leftmost on ties), update its neighbours' pair ranks, repeat.
  void merge_short(const char* p, size_t n, std::vector<uint32_t>& out) const {
    uint32_t start[kShortPiece + 1], pair[kShortPiece + 1], token[kShortPiece + 1];
    size_t m = n + 1;  // parts, the last one being the end sentinel
    for (size_t i = 0; i < n; ++i) {
      start[i] = static_cast<uint32_t>(i);
      token[i] = rank_of(p + i, 1);
      pair[i] = i + 1 < n ? rank_of(p + i, 2) : kNoRank;
    }
    start[n] = static_cast<uint32_t>(n);
    pair[n] = kNoRank;
    for (;;) {
      uint32_t best = kNoRank;
      size_t i = 0;
      for (size_t k = 0; k + 1 < m; ++k)
        if (pair[k] < best) {
          best = pair[k];
          i = k;
        }
      if (best == kNoRank) break;
      token[i] = best;
      if (i > 0)
        pair[i - 1] = i + 2 < m ? rank_of(p + start[i - 1], start[i + 2] - start[i - 1]) : kNoRank;
      pair[i] = i + 3 < m ? rank_of(p + start[i], start[i + 3] - start[i]) : kNoRank;
      for (size_t k = i + 1; k + 1 < m; ++k) {
        start[k] = start[k + 1];
        pair[k] = pair[k + 1];
        token[k] = token[k + 1];
      }
      --m;
    }
    out.insert(out.end(), token, token + (m - 1));
  }

  // The same merges in the same order through a heap of (pair rank, start): the leftmost pair
  // among the lowest-ranked ones is exactly the one tiktoken's scan picks.
  void merge_long(const char* p, size_t n, std::vector<uint32_t>& out) const {
    next_.resize(n + 1);
    prev_.resize(n + 1);
    token_.resize(n + 1);
    pair_.resize(n + 1);
    std::vector<HeapEntry>& heap = heap_;
    heap.clear();
    for (size_t i = 0; i <= n; ++i) {
      next_[i] = static_cast<uint32_t>(i + 1);
      prev_[i] = static_cast<uint32_t>(i) - 1;  // wraps for 0; never read
      token_[i] = i < n ? rank_of(p + i, 1) : kNoRank;
      pair_[i] = i + 1 < n ? rank_of(p + i, 2) : kNoRank;
      if (pair_[i] != kNoRank) heap.push_back({pair_[i], static_cast<uint32_t>(i)});
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const HeapEntry e = heap.back();
      heap.pop_back();
      const uint32_t i = e.start;
      if (token_[i] == kNoRank || pair_[i] != e.rank) continue;  // merged away or stale
      const uint32_t j = next_[i];                               // absorbed into i
      token_[i] = e.rank;
      token_[j] = kNoRank;
      next_[i] = next_[j];
      prev_[next_[j]] = i;
      const uint32_t after = next_[i];  // i now covers [i, after)
      pair_[i] = after < n ? rank_of(p + i, next_[after] - i) : kNoRank;
      if (pair_[i] != kNoRank) push(heap, {pair_[i], i});
      if (i > 0) {
        const uint32_t k = prev_[i];
        pair_[k] = rank_of(p + k, after - k);
        if (pair_[k] != kNoRank) push(heap, {pair_[k], k});
      }
    }
    for (uint32_t i = 0; i < n; i = next_[i]) out.push_back(token_[i]);
  }

  struct HeapEntry {
    uint32_t rank, start;
    // std heaps are max-heaps: "less" here means a later merge.
    bool operator<(const HeapEntry& o) const {
      return rank != o.rank ? rank > o.rank : start > o.start;
    }
  };
  static void push(std::vector<HeapEntry>& heap, HeapEntry e) {
    heap.push_back(e);
    std::push_heap(heap.begin(), heap.end());
  }

  std::shared_ptr<const TiktokenModel> m_;
  pcre2_match_data* match_ = nullptr;
  pcre2_match_context* context_ = nullptr;
  pcre2_jit_stack* jit_stack_ = nullptr;
  // Per-object scratch and cache (one thread at a time, see tokenizer.h).
  mutable ByteTable cache_;                  // piece -> offset of its ids in cache_ids_
  mutable std::vector<uint32_t> cache_ids_;  // count, then the ids
  mutable std::vector<uint32_t> next_, prev_, token_, pair_;
  mutable std::vector<HeapEntry> heap_;
};

}  // namespace

std::unique_ptr<Tokenizer> tiktoken_open(const std::string& path) {
  return std::make_unique<TiktokenTokenizer>(tiktoken_model_load(path));
}

#endif  // LONGNET_WITH_TIKTOKEN

}  // namespace longnet
