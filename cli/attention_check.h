// `longnet check attention`: runs sequence-parallel dilated attention forward and backward under
// mpirun on CPU (MPI) or GPU (NCCL) and compares every rank's part with the single-process
// result of the whole sequence, built from the same seed on every rank; for problems of up to
// 2^26 attention scores (batch x heads x N^2) it also compares the single-process result with
// the float64 definition (core/dilated_reference.h). On one rank that comparison is the check,
// and a larger problem is refused.
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "longnet/core/options.h"

namespace longnet {

struct AttentionCheckOptions {
  int64_t seq_len = 4096, batch = 1, heads = 12, head_dim = 64;
  std::vector<int64_t> segments{2048, 4096}, rates{1, 2};
  bool causal = false;
  c10::ScalarType dtype = c10::kFloat;
  int64_t sp = 0;  // 0: the world size
  uint64_t seed = 0;
  c10::DeviceType device = c10::kCPU;
  EngineOptions engine;
};

// Prints the relative errors of out, dq, dk, dv and the bytes each rank sent; returns 0 when
// every error is within the dtype's tolerance, 1 otherwise.
int attention_check(const AttentionCheckOptions& o);

}  // namespace longnet
