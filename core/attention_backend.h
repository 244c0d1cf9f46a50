// How a model computes its dilated attention: on one device (the default here), or split over
// the ranks of a sequence-parallel group (parallel/sequence_parallel_attention.h implements this
// interface). Models call only this, so core/ stays free of MPI and NCCL.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "longnet/core/dilated_attention.h"

namespace longnet {

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  // q, k, v: (B, N_local, H, D) holding this rank's tokens. Returns (B, N_local, H, D).
  // Differentiable.
  virtual at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const DilatedAttentionOptions& o) = 0;
  // Global index of this rank's first token (0 on one device).
  virtual int64_t position_offset(int64_t local_len) const { return 0; }
  // Length of the whole sequence that local_len tokens are a part of.
  virtual int64_t global_len(int64_t local_len) const { return local_len; }
};

// The whole sequence on this device: dilated_attention().
class LocalAttention : public AttentionBackend {
 public:
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const DilatedAttentionOptions& o) override {
    return dilated_attention(q, k, v, o);
  }
};

inline std::shared_ptr<AttentionBackend> attention_local() {
  return std::make_shared<LocalAttention>();
}

}  // namespace longnet
