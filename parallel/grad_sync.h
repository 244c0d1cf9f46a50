// Gradient synchronisation: every rank of the world (data and sequence parallel alike) holds the
// same parameters, so after a backward their gradients are summed over the world and divided by
// its size (the mean over the data and sequence shards of the step).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "longnet/parallel/communicator.h"

namespace longnet {

// Elements per all-reduce bucket: few enough collectives to keep the link busy, small enough
// staging copies.
constexpr int64_t kGradBucketElements = int64_t(32) << 20;

// For every parameter with a gradient: grad = (sum over `world` of grad) / world.size(). The
// gradients are copied into flat buckets of about bucket_elements elements (a bucket holds whole
// tensors; one larger than a bucket gets its own), all reduced before the first wait so the
// transfers queue back to back on the communicator's stream, then copied back. Parameters
// without a gradient are skipped (every rank must agree on which those are). With one rank it
// does nothing.
void grads_all_reduce(const std::vector<at::Tensor>& params, Communicator& world,
                      int64_t bucket_elements = kGradBucketElements);

}  // namespace longnet
