// xPos relative positions (Sun et al. 2022, "A Length-Extrapolatable Transformer"), as torchscale's
// XPOS, in a form that stays finite at any sequence length: LongNet applies it to q and k of every
// self-attention, and sequences here reach a billion tokens.
//
// torchscale rotates each interleaved pair i of q_n and k_m by n*theta_i (theta_i =
// 10000^(-2i/D)) and scales it by zeta_i^(n/512) for q and zeta_i^(-n/512) for k, with
// zeta_i = (2i + 0.4 D) / (1.4 D). The product q_n . k_m then depends only on n - m, so replacing
// n by a local position n - c changes nothing, in exact arithmetic, for any c that q_n and k_m
// share. torchscale uses global n (its scale is centred on L/2, its angle not): with
// zeta_0 = 0.4/1.4, zeta_0^(-n/512) overflows float32 (and bfloat16) once |n| passes about 36K
// and zeta_0^(n/512) underflows to 0 soon after, so k becomes infinite and q zero a few tens of
// thousands of tokens in; and float32 angles n*theta lose all precision long before a million.
//
// Here c is shared by every pair of tokens that can ever attend to each other:
//   W = the largest segment length clipped to N, if every clipped segment length divides W
//       (then every segment of every branch lies inside one block [b W, (b+1) W)), and
//   c = (n / W) * W + W / 2        (integer division: the centre of n's block),
// else c = N / 2 for every token (exact, but as torchscale's it would overflow for long N: such
// sequences, and largest segments beyond float32's range, are refused by xpos_range_check).
// So |n - c| <= W / 2 (16384 for the paper's w = 32768): zeta_0^(32) ~ 4e-18 and its inverse
// fit float32 and bfloat16 comfortably (not float16: that is rejected beyond its range). Angles,
// scales and their products are computed in float64, then cast; the rotation itself runs in
// float32 for 16-bit inputs. Positions are GLOBAL token indices, so every rank of a
// sequence-parallel group gets the same numbers as one device holding the whole sequence.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <tuple>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

// The block length W used for the reference position c (see above), or 0 when the clipped segment
// lengths do not all divide the largest one (then c = global_len / 2).
int64_t xpos_block_length(int64_t global_len, const std::vector<int64_t>& segment_lengths);

// xpos_scales_check (options.h) for inputs of `dtype`, after this file's argument checks. The
// rotation itself checks the causal bound; attention without the causal mask checks its own.
void xpos_range_check(int64_t global_len, const std::vector<int64_t>& segment_lengths,
                      at::ScalarType dtype, int64_t scale_base = kXposScaleBase,
                      bool causal = true);

// The local positions n - c of global tokens position_offset .. position_offset + n_local - 1.
// Returns (n_local,) float64 on `device`.
at::Tensor xpos_local_positions(int64_t position_offset, int64_t n_local, int64_t global_len,
                                const std::vector<int64_t>& segment_lengths, at::Device device);

// q, k: (B, N_local, H, D), D even, on one device, holding global tokens position_offset .. +
// N_local - 1 of a sequence of global_len tokens. Returns (q', k'), same shapes and dtype,
// differentiable.
std::tuple<at::Tensor, at::Tensor> xpos_apply(const at::Tensor& q, const at::Tensor& k,
                                              int64_t position_offset, int64_t global_len,
                                              const std::vector<int64_t>& segment_lengths,
                                              int64_t scale_base = kXposScaleBase);

// xpos_apply on the q and k of one projection, qkv (B, N_local, 3, H, D): returns (q', k', v),
// v a view of qkv. On the GPU the backward writes all three gradients into one tensor of qkv's
// shape (no concatenation); elsewhere it is unbind and xpos_apply.
std::tuple<at::Tensor, at::Tensor, at::Tensor> xpos_apply_qkv(
    const at::Tensor& qkv, int64_t position_offset, int64_t global_len,
    const std::vector<int64_t>& segment_lengths, int64_t scale_base = kXposScaleBase);

// ---- explicit positions (generation, docs/design.md section 7) --------------------------------

// xPos tables for tokens at explicit global positions, with the block-mode reference
// c = floor(n / block) * block + block / 2 for every token (generation knows no final length, so
// it always uses block mode; see core/dilated_cache.h). Each table is (positions.numel(), D/2) in
// `dtype` (float32, or float64 for float64 inputs), built in float64 exactly as the forward's.
struct XposPositionTables {
  at::Tensor cos_q, sin_q, cos_k, sin_k;
};
// positions: int64, any shape, on the device the tables are wanted on. No host synchronisation
// (the step of generation captures it in a CUDA graph).
XposPositionTables xpos_tables_at(const at::Tensor& positions, int64_t block, int64_t head_dim,
                                  at::ScalarType dtype, int64_t scale_base = kXposScaleBase);
// x: (B, T, H, D), token (b, t) at the position of entry b * T + t of the tables. Rotates x as a
// query (key = false) or a key. Not differentiable. Returns a new (B, T, H, D) tensor.
at::Tensor xpos_rotate_at(const at::Tensor& x, const XposPositionTables& tables, bool key);

// torchscale's XPOS(head_dim, scale_base) as a module; it has no parameters or buffers (the
// tables depend on the positions; the last few sets built are cached process-wide).
class XPosImpl : public torch::nn::Module {
 public:
  explicit XPosImpl(int64_t head_dim, int64_t scale_base = kXposScaleBase);
  // q, k: (B, N_local, H, head_dim) -> (q', k')
  std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& q, const at::Tensor& k,
                                             int64_t position_offset, int64_t global_len,
                                             const std::vector<int64_t>& segment_lengths);
  // qkv: (B, N_local, 3, H, head_dim) -> (q', k', v) (xpos_apply_qkv)
  std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_qkv(
      const at::Tensor& qkv, int64_t position_offset, int64_t global_len,
      const std::vector<int64_t>& segment_lengths);
  int64_t head_dim() const { return head_dim_; }
  int64_t scale_base() const { return scale_base_; }

 private:
  int64_t head_dim_, scale_base_;
};
TORCH_MODULE(XPos);

}  // namespace longnet
