// The decode kernels of the dilated KV cache (dilated_cache.h), torch-free for nvcc: one step of
// one attention layer for B sequences, each at its own position.
//
// One pass (one_pass, the default), one kernel: block (b h, branch i, chunk c) reads slots
// [c R, min((c+1) R, a_i + 1)) of branch i when head h selects the row (the new row itself from
// k_new, v_new; the block whose chunk holds slot a_i also stores it there), writes a partial
// (acc[D], max, sum) in float32 (log2 domain) to partial[b h][i max_chunks + c]. Then two
// levels of merges, each by the last block to arrive (counts in `arrivals`, set back to 0 by
// that block): of branch i's chunks, into its chunk 0; of (b, h)'s branches, into out (0 when no
// branch selects the row). With early_launch, the cache's rows load while the kernel before it
// finishes.
//
// Three passes (one_pass false): the same in three kernels:
//   1. store:   the new k, v rows into slot off_i + a_i of every head that selects them;
//   2. attend:  the partials;
//   3. combine: merges the partials of (b, h) into out.
// Only the slots a row attends to are read: the step's cost follows the rows needed, not the
// cache's capacity.
#pragma once

#include <cstdint>

namespace longnet {

constexpr int kDecodeMaxBranches = 8;

struct DilatedDecodeParams {
  const void* q = nullptr;      // (B, H, D), last dim contiguous
  const void* k_new = nullptr;  // (B, H, D)
  const void* v_new = nullptr;  // (B, H, D)
  int64_t q_stride_b = 0, q_stride_h = 0, k_stride_b = 0, k_stride_h = 0, v_stride_b = 0,
          v_stride_h = 0;              // in elements
  void* k_cache = nullptr;             // (B, H, S, D) contiguous
  void* v_cache = nullptr;             // (B, H, S, D) contiguous
  void* out = nullptr;                 // (B, H, D) contiguous
  float* partial = nullptr;            // (B H, nb max_chunks, D + 2) scratch
  unsigned* arrivals = nullptr;        // (B H) then (B H, nb) counts, 0 between launches (one pass)
  const int64_t* positions = nullptr;  // (B,)
  int64_t B = 0, H = 0, D = 0, S = 0;
  int nb = 0;  // branches
  int64_t w[kDecodeMaxBranches] = {}, r[kDecodeMaxBranches] = {}, off[kDecodeMaxBranches] = {};
  int64_t chunk_rows = 64;  // R: a multiple of 64
  int64_t max_chunks = 1;   // ceil(max_i ceil(w_i / r_i) / R)
  float scale = 1.0f;
  bool one_pass = true;
  // One pass: launch early (programmatic dependent launch), loading cached rows and positions
  // before waiting for the previous kernel. Only where that kernel writes neither the cache nor
  // positions (nor anything they alias); else a plain launch.
  bool early_launch = false;
};

// dtype: 0 float32, 1 float16, 2 bfloat16 (kernel_dtype.h). D in {16, 32, 64, 128, 256}.
// stream: a cudaStream_t.
void dilated_decode_launch(const DilatedDecodeParams& p, int dtype, void* stream);

}  // namespace longnet
