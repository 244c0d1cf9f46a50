// Builds the data x sequence process grid and its communicators (see process_grid.h).
#include "longnet/parallel/process_grid.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>

#ifdef LONGNET_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "longnet/parallel/mpi_bootstrap.h"

namespace longnet {

std::shared_ptr<Communicator> ProcessGrid::segment_group(int span) {
  TORCH_CHECK(span >= 1 && span <= sequence_parallel, "segment_group: span ", span,
              " must be in [1, ", sequence_parallel, "]");
  if (span == sequence_parallel) return sp;
  auto it = segment_groups_.find(span);
  if (it != segment_groups_.end()) return it->second;
  auto group = sp->split(sp_index / span, sp_index);
  segment_groups_[span] = group;
  return group;
}

double world_max(Communicator& host, double x) {
  auto t = at::full({1}, x, at::kDouble);
  host.all_reduce(t, ReduceOp::kMax)->wait();
  return t.item<double>();
}

std::string world_broadcast(Communicator& host, const std::string& s, int root) {
  auto len = at::full({1}, static_cast<int64_t>(s.size()), at::kLong);
  host.broadcast(len, root);
  auto bytes = at::empty({len.item<int64_t>()}, at::kByte);
  if (host.rank() == root && !s.empty()) std::memcpy(bytes.data_ptr(), s.data(), s.size());
  // In pieces of 1 GiB: one MPI call counts at most 2^31 - 1 elements (a long prompt's ids).
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t at = 0; at < bytes.numel(); at += kPiece) {
    auto piece = bytes.narrow(0, at, std::min(kPiece, bytes.numel() - at));
    host.broadcast(piece, root);
  }
  return std::string(static_cast<const char*>(bytes.data_ptr()), bytes.numel());
}

WorldDifference world_first_difference(Communicator& host, const std::string& mine) {
  WorldDifference d;
  d.root = world_broadcast(host, mine, 0);
  const double first = -world_max(host, mine != d.root ? -double(host.rank()) : -1e9);
  if (first == 1e9) return d;
  d.rank = int(first);
  d.theirs = world_broadcast(host, mine, d.rank);
  return d;
}

double world_max(ProcessGrid& grid, double x) {
  return world_max(*grid.host, x);
}

std::string world_broadcast(ProcessGrid& grid, const std::string& s, int root) {
  return world_broadcast(*grid.host, s, root);
}

at::Tensor world_all_gather_bytes(ProcessGrid& grid, const at::Tensor& bytes) {
  auto flat = bytes.contiguous().view(at::kByte).reshape({-1}).cpu();
  auto all = at::empty({grid.world_size, flat.numel()}, at::kByte);
  grid.host->all_gather(flat, all)->wait();
  return all;
}

std::shared_ptr<ProcessGrid> process_grid_create(int data_parallel, int sequence_parallel,
                                                 c10::DeviceType device_type) {
  mpi_ensure_initialized();
  auto grid = std::make_shared<ProcessGrid>();
  grid->world_rank = mpi_world_rank();
  grid->world_size = mpi_world_size();
  const int world = grid->world_size;
  TORCH_CHECK(sequence_parallel >= 1, "process grid: sequence_parallel must be >= 1, got ",
              sequence_parallel);
  if (data_parallel == 0) {
    TORCH_CHECK(world % sequence_parallel == 0,
                "process grid: sequence_parallel = ", sequence_parallel,
                " does not divide the world size ", world, " (mpirun -np); use a divisor of ",
                world, " or launch a multiple of ", sequence_parallel, " ranks");
    data_parallel = world / sequence_parallel;
  }
  TORCH_CHECK(data_parallel >= 1, "process grid: data_parallel must be >= 1, got ", data_parallel);
  TORCH_CHECK(data_parallel * sequence_parallel == world,
              "process grid: data_parallel x "
              "sequence_parallel = ",
              data_parallel, " x ", sequence_parallel, " = ", data_parallel * sequence_parallel,
              " does not match the world size ", world, " (mpirun -np ", world,
              "); launch with -np ", data_parallel * sequence_parallel, " or change the grid");
  grid->data_parallel = data_parallel;
  grid->sequence_parallel = sequence_parallel;
  grid->dp_index = grid->world_rank / sequence_parallel;
  grid->sp_index = grid->world_rank % sequence_parallel;

  MPI_Comm node;
  LONGNET_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, grid->world_rank,
                                        MPI_INFO_NULL, &node));
  int local_rank = 0, local_ranks = 1;
  LONGNET_CHECK_MPI(MPI_Comm_rank(node, &local_rank));
  LONGNET_CHECK_MPI(MPI_Comm_size(node, &local_ranks));
  LONGNET_CHECK_MPI(MPI_Comm_free(&node));
  grid->local_ranks = local_ranks;
  grid->local_rank = local_rank;
  if (device_type == c10::kCUDA) {
#ifdef LONGNET_WITH_CUDA
    int count = c10::cuda::device_count();
    TORCH_CHECK(count > 0,
                "process grid: a CUDA run was asked for (device: cuda in a config, or --device "
                "cuda) but no GPU is visible; run on the CPU (device: cpu, the override "
                "device=cpu, or --device cpu), or on a machine with a GPU");
    // NCCL refuses two ranks of one communicator on one GPU ("invalid usage"): said here, with
    // what works. (Every rank of this host sees the same counts and stops here alike.)
    TORCH_CHECK(grid->world_size == 1 || local_ranks <= count, "process grid: ", local_ranks,
                " ranks run on this host but it has ", count,
                " GPU(s); on GPUs each rank needs one of its own (NCCL): launch at most ", count,
                " rank(s) per host (mpirun -np ", count,
                " on one machine), or run on the CPU (--device cpu, or device: cpu in a config)");
    grid->device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
    c10::cuda::set_device(grid->device.index());
#else
    TORCH_CHECK(false,
                "process grid: this build has no CUDA path; use the CPU device or "
                "rebuild with -DLONGNET_CUDA=ON");
#endif
  }
  grid->world = communicator_world(grid->device);
  grid->host =
      grid->world->backend() == std::string("mpi") ? grid->world : communicator_mpi_world();
  grid->sp = grid->world->split(grid->dp_index, grid->sp_index);
  grid->dp = grid->world->split(grid->sp_index, grid->dp_index);
  return grid;
}

}  // namespace longnet
