// A generation prefill split over the ranks of a group (`longnet generate` under mpirun), for
// prompts whose activations do not fit one device. Generation needs nested segment lengths
// (core/dilated_cache.h), so no segment of any branch crosses a multiple of the largest, w_max:
// the prompt's blocks of w_max tokens are independent, and each rank prefills a contiguous run
// of them with no attention traffic at all.
//
//   prompt of P tokens, nb = ceil(P / w_max) blocks, R ranks:
//   rank k runs blocks [k nb / R, (k+1) nb / R)       (a rank may run none when nb < R)
//
//   then for every sequence b the rank that ran its last prompt token (and so left its caches
//   as a whole prefill would) broadcasts b's cache rows of every attention and b's logits.
//
// Afterwards every rank's IncrementalLM holds the state of a whole prefill: bitwise the same as
// one rank's would be where the ranks compute alike (the same kernels, device and dtype).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "longnet/core/incremental_lm.h"
#include "longnet/parallel/communicator.h"

namespace longnet {

// The blocks [first, last) of a P-token prompt that rank `rank` of `ranks` prefills.
std::pair<int64_t, int64_t> prefill_blocks(int64_t P, int64_t block, int rank, int ranks);

// IncrementalLM::prefill over the ranks of `group` (collective over it; every rank passes the
// same tokens, lengths and rows). Returns the (B, V) logits after each prompt's last token on
// every rank. With one rank it is gen.prefill. With rows, the prompts of those sequences only,
// as IncrementalLM::prefill_rows (then B is rows.size()).
at::Tensor prefill_parallel(IncrementalLM& gen, const at::Tensor& tokens,
                            const std::vector<int64_t>& lengths, Communicator& group,
                            const std::vector<int64_t>& rows = {});

}  // namespace longnet
