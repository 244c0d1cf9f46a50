// Bucketed gradient all-reduce (see grad_sync.h).
#include "longnet/parallel/grad_sync.h"

#include <ATen/ATen.h>

#include <memory>

namespace longnet {

void grads_all_reduce(const std::vector<at::Tensor>& params, Communicator& world,
                      int64_t bucket_elements) {
  TORCH_CHECK(bucket_elements >= 1, "grads_all_reduce: bucket_elements = ", bucket_elements,
              " must be >= 1");
  if (world.size() == 1) return;  // nothing to sum: no copies into buckets and back
  std::vector<std::vector<at::Tensor>> buckets(1);
  int64_t filled = 0;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    if (filled > 0 && filled + p.numel() > bucket_elements) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(p.grad());
    filled += p.numel();
  }
  std::vector<at::Tensor> flats;
  std::vector<std::unique_ptr<CommWork>> works;
  for (auto& b : buckets) {
    if (b.empty()) continue;
    std::vector<at::Tensor> views;
    for (const auto& g : b) views.push_back(g.reshape({-1}));
    flats.push_back(at::cat(views));
    works.push_back(world.all_reduce(flats.back(), ReduceOp::kSum));
  }
  const double inv = 1.0 / world.size();
  for (size_t i = 0, bi = 0; i < buckets.size(); ++i) {
    if (buckets[i].empty()) continue;
    works[bi]->wait();
    int64_t offset = 0;
    for (auto& g : buckets[i]) {
      g.copy_(flats[bi].narrow(0, offset, g.numel()).view_as(g)).mul_(inv);
      offset += g.numel();
    }
    ++bi;
  }
}

}  // namespace longnet
