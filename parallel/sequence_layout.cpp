// The split of a sequence over sequence-parallel ranks and its checks (see sequence_layout.h).
#include "longnet/parallel/sequence_layout.h"

#include <algorithm>
#include <string>

namespace longnet {
namespace {

// Divisors of n above 1, ascending: every one when n < 2^40, else those with a cofactor below
// 2^20 (the search is O(min(sqrt(n), 2^20))).
std::vector<int64_t> divisors_above_one(int64_t n) {
  std::vector<int64_t> low, high;
  for (int64_t d = 2; d * d <= n && d <= (int64_t(1) << 20); ++d)
    if (n % d == 0) {
      low.push_back(d);
      if (d != n / d) high.push_back(n / d);
    }
  low.insert(low.end(), high.rbegin(), high.rend());
  if (n > 1) low.push_back(n);
  return low;
}

std::string last_few(const std::vector<int64_t>& v, size_t count) {
  std::string s;
  for (size_t i = v.size() > count ? v.size() - count : 0; i < v.size(); ++i)
    s += (s.empty() ? "" : ", ") + std::to_string(v[i]);
  return s;
}

// The nesting rule of a segment length w (already clipped to N) with the local length L: w
// divides L or is a multiple of it (w < 1 is the attention's own error, not this rule's).
bool nests(int64_t w, int64_t L) {
  return w < 1 || (w <= L ? L % w == 0 : w % L == 0);
}

// Whether N tokens split over P ranks with every segment length (clipped to N) nesting with
// L = N / P: the rules the constructor checks, as a yes or no.
bool splits(int64_t N, int64_t P, const std::vector<int64_t>& segment_lengths) {
  if (N < 1 || N % P != 0) return false;
  if (P == 1) return true;
  for (int64_t w : segment_lengths)
    if (!nests(std::min(w, N), N / P)) return false;
  return true;
}

// " (e.g. A or B)": the sequence lengths nearest to N, below and above it, that split over P
// ranks with these segments ("" when the search finds none).
std::string lengths_that_split(int64_t N, int64_t P, const std::vector<int64_t>& segment_lengths) {
  constexpr int64_t kSteps = 1 << 16;  // multiples of P tried each way
  int64_t below = 0, above = 0;
  for (int64_t i = 0, n = N / P * P; i < kSteps && n >= P && below == 0; ++i, n -= P)
    if (n != N && splits(n, P, segment_lengths)) below = n;
  // (Above: up to the longest sequence a config takes, with no overflow on the way.)
  if (N / P < kMaxTokens / P)
    for (int64_t i = 0, n = (N / P + 1) * P; i < kSteps && n <= kMaxTokens && above == 0;
         ++i, n += P)
      if (splits(n, P, segment_lengths)) above = n;
  if (below == 0 && above == 0) return "";
  return " (e.g. " + (below > 0 ? std::to_string(below) : "") +
         (below > 0 && above > 0 ? " or " : "") + (above > 0 ? std::to_string(above) : "") + ")";
}

}  // namespace

SequenceLayout::SequenceLayout(int64_t seq_len, int64_t sp_size,
                               const std::vector<int64_t>& segment_lengths)
    : seq_len_(seq_len), sp_size_(sp_size), local_len_(0) {
  const std::string owner = "sequence parallel";
  if (sp_size < 1)
    throw OptionsError(owner, "sequence_parallel",
                       std::to_string(sp_size) + " must be >= 1 (ranks per sequence)");
  if (seq_len < 1)
    throw OptionsError(owner, "seq_len", std::to_string(seq_len) + " must be >= 1 tokens");
  if (seq_len % sp_size != 0)
    throw OptionsError(owner, "seq_len",
                       "the sequence of " + std::to_string(seq_len) +
                           " tokens does not split evenly over " + std::to_string(sp_size) +
                           " ranks; use a length that splits over them" +
                           lengths_that_split(seq_len, sp_size, segment_lengths) +
                           " or a sequence_parallel size that divides " + std::to_string(seq_len),
                       {"sequence_parallel"});
  local_len_ = seq_len / sp_size;
  const int64_t L = local_len_;
  // One rank holds the whole sequence: nothing is split, any segment lengths work.
  for (size_t i = 0; i < segment_lengths.size() && sp_size > 1; ++i) {
    const int64_t w = clip(segment_lengths[i]);
    if (nests(w, L)) continue;
    const auto divisors = divisors_above_one(L);
    throw OptionsError(
        owner, "segment_lengths[" + std::to_string(i) + "]",
        "segment length " + std::to_string(segment_lengths[i]) +
            (w != segment_lengths[i] ? " (clipped to N = " + std::to_string(seq_len) + ")" : "") +
            " neither divides the local length L = N / P = " + std::to_string(seq_len) + " / " +
            std::to_string(sp_size) + " = " + std::to_string(L) + " nor is a multiple of it; use " +
            (divisors.empty()
                 ? ""
                 : "a divisor of " + std::to_string(L) + " (" + last_few(divisors, 4) + ") or ") +
            "a multiple of " + std::to_string(L) + " (or a sequence length that splits over " +
            std::to_string(sp_size) + " ranks" +
            lengths_that_split(seq_len, sp_size, segment_lengths) +
            ", or another sequence_parallel)",
        {"seq_len", "sequence_parallel"});
  }
}

SequenceLayout sequence_layout_local(int64_t local_len, int64_t sp_size,
                                     const std::vector<int64_t>& segment_lengths) {
  return SequenceLayout(local_len * sp_size, sp_size, segment_lengths);
}

}  // namespace longnet
