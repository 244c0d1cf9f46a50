// The split prefill of parallel_prefill.h.
#include "longnet/parallel/parallel_prefill.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "longnet/core/int_math.h"

namespace longnet {

std::pair<int64_t, int64_t> prefill_blocks(int64_t P, int64_t block, int rank, int ranks) {
  TORCH_CHECK(P >= 0 && block >= 1 && ranks >= 1 && rank >= 0 && rank < ranks,
              "prefill_blocks: P = ", P, ", block = ", block, ", rank ", rank, " of ", ranks);
  const int64_t nb = ceil_div(P, block);
  return {nb * rank / ranks, nb * (rank + 1) / ranks};
}

at::Tensor prefill_parallel(IncrementalLM& gen, const at::Tensor& tokens,
                            const std::vector<int64_t>& lengths, Communicator& group,
                            const std::vector<int64_t>& rows) {
  const int R = group.size();
  if (R == 1)
    return rows.empty() ? gen.prefill(tokens, lengths) : gen.prefill_rows(tokens, lengths, rows);
  TORCH_CHECK(tokens.dim() == 2 && int64_t(lengths.size()) == tokens.size(0),
              "prefill_parallel: tokens ", tokens.sizes(), " for ", lengths.size(), " lengths");
  const int64_t P = tokens.size(1), block = gen.block();
  auto [first, last] = prefill_blocks(P, block, group.rank(), R);
  auto logits = gen.prefill_range(tokens, lengths, std::min(first * block, P),
                                  std::min(last * block, P), nullptr, rows);
  // The rank whose blocks hold prompt b's last token.
  auto owner = [&](int64_t b) {
    const int64_t blk = (lengths[b] - 1) / block;
    for (int k = 0; k < R; ++k) {
      auto [f, l] = prefill_blocks(P, block, k, R);
      if (blk >= f && blk < l) return k;
    }
    TORCH_INTERNAL_ASSERT(false, "prefill_parallel: no rank runs block ", blk);
  };
  for (int64_t b = 0; b < int64_t(lengths.size()); ++b) {
    const int root = owner(b);
    const int64_t row = rows.empty() ? b : rows[size_t(b)];
    for (const auto& cache : gen.caches()) {
      group.broadcast(cache->keys().select(0, row), root);
      group.broadcast(cache->values().select(0, row), root);
    }
    group.broadcast(logits.select(0, b), root);
  }
  return logits;
}

}  // namespace longnet
