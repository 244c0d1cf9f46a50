// Sequence-parallel dilated attention (docs/design.md section 3): each of the P ranks of a
// sequence-parallel group holds L = N / P consecutive tokens, and the result (outputs and
// dq, dk, dv) equals the single-device computation of the whole sequence.
//
//   branch with w <= L (w divides L): each segment lies on one rank, so it is computed locally.
//   branch with w > L (L divides w): segment m spans the g = w / L ranks [m g, (m+1) g)
//
//        tokens   |   rank m g   |  rank m g+1  |  ...  |  rank (m+1) g - 1  |
//        u        0              L              2L                          w
//
//     rank t (u = (t mod g) L) holds, for offset class s, the rows at local positions
//     a0 + a r with a0 = (s - u) mod r. It sends only those dilated K and V rows, one padded
//     block (2, B, ceil(L / r), H, D) where head j holds the rows of class j mod r, and the
//     segment's ranks all-gather them: (g, 2, B, ceil(L / r), H, D), i.e. 2 (w / r) H D
//     elements per rank however long the sequence.
//     Its class-s queries attend to its own rows (causal if asked: a square problem) and to
//     every other rank's rows (not causal: under is_causal only ranks before it are visible,
//     and those entirely). All problems merge by log-sum-exp with the local branches.
//     Backward: gradients for other ranks' rows go into a (g, 2, B, ceil(L / r), H, D) buffer
//     that a reduce-scatter returns to their owners.
//
// The all-gathers are issued before the local branches run, so on GPUs (NCCL on its own stream)
// the exchange overlaps them. The backward runs the local branches first (the spanning ones add
// into their gradients), so its reduce-scatters overlap only the last spanning problems.
#pragma once

#include <memory>
#include <vector>

#include "longnet/core/attention_backend.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_layout.h"

namespace longnet {

class SequenceParallelAttention : public AttentionBackend {
 public:
  explicit SequenceParallelAttention(std::shared_ptr<ProcessGrid> grid);

  // q, k, v: (B, L, H, D), this rank's tokens. Returns (B, L, H, D). Differentiable. The layout
  // (a SequenceLayout of L * P tokens) is checked once per distinct (L, segment lengths).
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const DilatedAttentionOptions& o) override;
  int64_t position_offset(int64_t local_len) const override;
  int64_t global_len(int64_t local_len) const override;

  // Without autograd, for checks and benchmarks.
  struct Forward {
    at::Tensor out;                    // (B, L, H, D), q's dtype
    at::Tensor lse;                    // (B, L, H), lse_dtype_for(q)
    std::vector<at::Tensor> gathered;  // per spanning branch: (g, 2, B, ceil(L/r), H, D)
    std::vector<at::Tensor> rng;       // per problem, when dropout > 0
  };
  Forward forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const DilatedAttentionOptions& o);
  // Returns dq, dk, dv (B, L, H, D) in q's dtype.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& dout,
                                                          const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const Forward& f,
                                                          const DilatedAttentionOptions& o);

  // Payload bytes this rank gave to collectives (all-gathers and reduce-scatters) so far.
  int64_t bytes_sent() const { return bytes_sent_; }
  const ProcessGrid& grid() const { return *grid_; }

 private:
  // Throws OptionsError unless L tokens per rank fit the layout rules for o.
  void layout_check(int64_t local_len, const DilatedAttentionOptions& o);

  std::shared_ptr<ProcessGrid> grid_;
  int64_t bytes_sent_ = 0;
  int64_t checked_len_ = -1;  // the (L, segment lengths) last checked
  std::vector<int64_t> checked_segments_;
};

}  // namespace longnet
