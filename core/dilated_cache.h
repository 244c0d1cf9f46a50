// The dilated KV cache of one attention layer (docs/design.md section 7): what generation keeps
// so that the next token's attention row equals the full forward's, in memory that does not grow
// with the context.
//
// Position p of branch i (segment length w, rate r) lies at offset o = p mod w of its segment, in
// offset class s = o mod r, at slot a = floor(o / r) of that class. Head j (offset j mod r)
// selects p iff j mod r = s, and then attends to the slots 0..a of its own class: exactly the
// keys K_i(p, j) of section 2 (causal). So per (sequence, head, branch) the cache is a fixed array
// of C = ceil(w / r) slots; slot a of head j holds the key of position m w + (j mod r) + a r of
// the current segment m. Queries only read slots at or below their own, and every such slot was
// written in the current segment before it is read, so nothing is ever cleared: a new segment
// overwrites the slots as it reaches them (memory at position 1M equals memory at 32K).
//
//   k, v: (B, H, S, D), S = sum_i C_i; branch i owns slots [off_i, off_i + C_i)
//
// A key that two branches select sits in both branches' slots and so counts twice in the one
// softmax over all slots, as in the full forward; a row no branch selects gets 0.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

class DilatedKVCache {
 public:
  // A cache for `batch` sequences of an attention with these segment lengths and rates, heads
  // of head_dim, on options' device and dtype (the dtype of the keys it will hold).
  DilatedKVCache(const DilatedAttentionOptions& o, int64_t batch, int64_t heads, int64_t head_dim,
                 at::TensorOptions options);

  // Stores the keys and values of a prompt chunk that later queries need. k, v: (B, T, H, D),
  // tokens [chunk_start, chunk_start + T) of every sequence (rotated by xPos as the forward does),
  // any strides. lengths[b]: sequence b's prompt length (rows at or past it are padding and are
  // not stored). Chunks must start at a multiple of block() and, but for the last, be a multiple
  // of it long (then every segment of every branch lies inside one chunk). With rows, k and v
  // hold rows.size() sequences, the i-th being this cache's sequence rows[i] (distinct, in
  // [0, batch())); the other sequences are untouched.
  void fill(const at::Tensor& k, const at::Tensor& v, int64_t chunk_start,
            const std::vector<int64_t>& lengths, const std::vector<int64_t>& rows = {});

  // One new token per sequence: stores its key and value where its branches select it, then
  // returns its attention row. q, k, v: (B, H, D) any strides (q and k rotated by xPos),
  // positions: (B,) int64 on the cache's device, the tokens' positions. Returns (B, H, D) in the
  // cache's dtype. No host synchronisation. On CUDA (float32/16-bit, head_dim 16..256 a power of
  // two) it runs longnet's decode kernels, which read only the slots the rows attend to;
  // elsewhere ATen maths over all slots with a mask.
  at::Tensor step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& positions, double scale);
  // On CUDA, whether step runs its attention as one kernel (default) or as three (store,
  // attend, combine; dilated_cache_kernel.h). The same numbers either way.
  void set_one_pass(bool on) { one_pass_ = on; }
  bool one_pass() const { return one_pass_; }
  // One pass: let the kernel launch before the previous kernel in the stream has finished
  // (programmatic dependent launch), loading cached rows while it runs. Only for callers whose
  // kernel just before each step writes neither this cache nor the positions (as IncrementalLM's
  // step: its q/k/v projection); off by default.
  void set_early_launch(bool on) { early_launch_ = on; }
  // The ATen path of step (for tests on CUDA).
  at::Tensor step_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& positions, double scale);

  // Every sequence's slots become a copy of src's sequence `index` (same geometry): one prompt
  // prefilled once, continued by a whole batch.
  void copy_from(const DilatedKVCache& src, int64_t index);

  int64_t batch() const { return batch_; }
  int64_t heads() const { return heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t slots() const { return slots_; }  // S
  // The largest segment length: chunks of a prompt align to it.
  int64_t block() const { return block_; }
  // Bytes of k and v (all the cache holds besides a few small index tensors).
  int64_t bytes() const;
  const at::Tensor& keys() const { return k_; }    // (B, H, S, D)
  const at::Tensor& values() const { return v_; }  // (B, H, S, D)
  // Slots a query reads at `position` in head `head`, summed over branches (for bandwidth
  // bounds): sum over the branches selecting it of (slot + 1).
  int64_t rows_read(int64_t position, int64_t head) const;

 private:
  std::vector<int64_t> w_, r_, cap_, off_;
  int64_t batch_, heads_, head_dim_, slots_ = 0, block_ = 0;
  bool one_pass_ = true, early_launch_ = false;
  at::Tensor k_, v_, arrivals_;
  // For the ATen path: per slot its branch, its index in the branch and its branch's rate, (S,);
  // per branch w, r and offset, (nb,). int64 on the device.
  at::Tensor slot_branch_, slot_local_, slot_rate_, w_t_, r_t_, off_t_, heads_t_;
};

// Throws OptionsError unless generation can run these segment lengths: every segment length
// must divide the largest (nested, as the paper's), which makes xPos's reference position and
// the cache independent of the unknown final length. Returns the largest segment length.
int64_t generation_block_check(const DilatedAttentionOptions& o);

// Throws unless rows are distinct sequence indices in [0, batch); who names the caller.
void check_cache_rows(const std::vector<int64_t>& rows, int64_t batch, const char* who);

}  // namespace longnet
