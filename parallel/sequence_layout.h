// The sequence-parallel layout: a sequence of N tokens split over the P ranks of a
// sequence-parallel group, L = N / P consecutive tokens each, and how every dilated-attention
// branch lies on it (docs/design.md section 3):
//
//   sp rank:      0            1            2            3
//   tokens:   [0, L)       [L, 2L)      [2L, 3L)     [3L, N)
//
//   branch w <= L: each segment lies on one rank (L % w == 0): computed locally;
//   branch w >  L: segment m spans the g = w / L ranks [m g, (m+1) g) (w % L == 0), which
//                  exchange their dilated keys and values (sequence_parallel_attention.h).
//
// The one owner of the rules "N splits evenly over P" and "every segment length nests with L":
// configs, the attention and the checks ask it.
#pragma once

#include <cstdint>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

class SequenceLayout {
 public:
  // Checks that seq_len splits over sp_size ranks and, when the sequence is split (sp_size > 1),
  // that every segment length (clipped to seq_len) divides L or is a multiple of it; throws
  // OptionsError with field "seq_len" or
  // "segment_lengths[i]" (related: "sequence_parallel") naming the numbers and what would work.
  SequenceLayout(int64_t seq_len, int64_t sp_size, const std::vector<int64_t>& segment_lengths);

  int64_t seq_len() const { return seq_len_; }
  int64_t sp_size() const { return sp_size_; }
  int64_t local_len() const { return local_len_; }
  // Global index of the first token of sp rank `sp_index`.
  int64_t offset(int64_t sp_index) const { return sp_index * local_len_; }
  // Whether branch w (clipped to seq_len) spans ranks, and over how many (1 when local).
  bool spans(int64_t w) const { return clip(w) > local_len_; }
  int64_t span_ranks(int64_t w) const { return spans(w) ? clip(w) / local_len_ : 1; }
  int64_t clip(int64_t w) const { return w < seq_len_ ? w : seq_len_; }

 private:
  int64_t seq_len_, sp_size_, local_len_;
};

// The layout of this rank's local_len tokens over sp_size ranks (N = local_len * sp_size).
SequenceLayout sequence_layout_local(int64_t local_len, int64_t sp_size,
                                     const std::vector<int64_t>& segment_lengths);

}  // namespace longnet
