// Round-trip check of the communicators on CPU (MPI) or GPU (NCCL); see comm_check.h.
#include "longnet/cli/comm_check.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"

namespace longnet {

int comm_check(c10::DeviceType device_type, int64_t elements) {
  auto grid = process_grid_create(0, 1, device_type);
  auto& comm = *grid->world;
  const int n = comm.size(), r = comm.rank();
  // On the CPU the collectives are MPI's, whose counts are ints: the gathered float32 bytes of
  // every rank must stay below 2 GiB. Said now, naming the flag, not after the first collective.
  const int64_t most = ((int64_t{1} << 31) - 1) / (4 * int64_t(n));
  TORCH_CHECK(grid->device.is_cuda() || elements <= most, "check comm --elements ", elements,
              ": on the CPU (MPI) the gathered float32 tensor of ", n,
              " ranks must stay below 2 GiB; give --elements ", most, " or fewer");
  auto opts = at::TensorOptions().dtype(at::kFloat).device(grid->device);

  // all-gather: rank k contributes k*1000 + i.
  auto mine = at::arange(elements, opts) + 1000.0 * r;
  auto gathered = at::empty({n, elements}, opts);
  comm.all_gather(mine, gathered)->wait();
  auto expect = at::arange(elements, opts).unsqueeze(0) + 1000.0 * at::arange(n, opts).unsqueeze(1);
  TORCH_CHECK(at::equal(gathered, expect), "check comm: all_gather gave wrong values");

  // reduce-scatter: every rank sends (k+1) to slot k, so slot r sums to n*(r+1).
  auto send = (at::arange(n, opts) + 1).unsqueeze(1).expand({n, elements}).contiguous();
  auto recv = at::empty({elements}, opts);
  comm.reduce_scatter(send, recv)->wait();
  TORCH_CHECK(at::equal(recv, at::full({elements}, float(n * (r + 1)), opts)),
              "check comm: reduce_scatter gave wrong values");

  // all-reduce in bfloat16 (the training dtype): every rank gives 1. The sum, n, is exact in
  // bfloat16 up to 256 ranks whatever the order of the partial sums; past that each rounds, to
  // within 2^-8 of itself.
  auto t = at::full({elements}, 1.0f, opts.dtype(at::kBFloat16));
  comm.all_reduce(t, ReduceOp::kSum)->wait();
  const auto want = at::full({elements}, float(n), opts);
  const bool sum_ok = n <= 256 ? at::equal(t.to(at::kFloat), want)
                               : (t.to(at::kFloat) - want).abs().max().item<float>() <=
                                     float(n) * std::log2(float(n)) / 256.0f;
  TORCH_CHECK(sum_ok, "check comm: all_reduce gave wrong values");

  std::ostringstream s;
  s << "check comm: OK on " << n << " rank(s), backend " << comm.backend() << ", device "
    << grid->device << ", " << elements << " elements per rank";
  log_info(s.str());
  return 0;
}

}  // namespace longnet
