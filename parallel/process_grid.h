// The process grid: a world of P = data_parallel x sequence_parallel ranks, one per GPU (or per
// CPU process). Ranks of one sequence-parallel group are consecutive, so they share a host:
//
//   world rank  =  dp_index * sequence_parallel + sp_index
//
//   sequence of N tokens, L = N / sequence_parallel tokens per rank:
//   sp_index:      0            1            2            3
//   tokens:   [0, L)       [L, 2L)      [2L, 3L)     [3L, N)
//
// A dilated-attention branch whose segment w spans g = w / L ranks uses the segment group of
// sp ranks [m*g, (m+1)*g) (see parallel/sequence_parallel_attention.h).
#pragma once

#include <c10/core/Device.h>

#include <map>
#include <memory>
#include <string>

#include "longnet/parallel/communicator.h"

namespace longnet {

class ProcessGrid {
 public:
  int world_rank = 0, world_size = 1;
  int data_parallel = 1, sequence_parallel = 1;
  int dp_index = 0, sp_index = 0;
  int local_ranks = 1;  // ranks on this host (on the CPU they share its memory)
  int local_rank = 0;   // this rank's index among them
  c10::Device device = c10::Device(c10::kCPU);
  std::shared_ptr<Communicator> world;  // every rank, on `device` (NCCL on GPUs)
  std::shared_ptr<Communicator> host;   // every rank, MPI over CPU tensors: control values
  std::shared_ptr<Communicator> sp;     // the sequence-parallel group of this rank
  std::shared_ptr<Communicator> dp;     // ranks with this sp_index in every group

  // The group of sp ranks [k*span, min((k+1)*span, sequence_parallel)) holding this rank.
  // Created on first use; collective over the sp group, so every sp rank must ask for the same
  // spans in the same order (the attention layers do).
  std::shared_ptr<Communicator> segment_group(int span);

 private:
  std::map<int, std::shared_ptr<Communicator>> segment_groups_;
};

// Host-side agreement over the whole world through grid.host (checked and watched like every
// collective): the largest of every rank's x; root's string on every rank; every rank's bytes
// (the same count on each) as a (world, n) uint8 tensor.
double world_max(ProcessGrid& grid, double x);
std::string world_broadcast(ProcessGrid& grid, const std::string& s, int root);
// The same over any host communicator (e.g. communicator_mpi_world() before a grid exists).
double world_max(Communicator& host, double x);
std::string world_broadcast(Communicator& host, const std::string& s, int root);
at::Tensor world_all_gather_bytes(ProcessGrid& grid, const at::Tensor& bytes);

// Whether every rank's `mine` equals rank 0's. Collective. When not, on every rank alike: the
// lowest rank whose text differs, its text and rank 0's (so that whichever rank prints first as
// the job ends names the same difference).
struct WorldDifference {
  int rank = -1;  // -1: every rank agrees
  std::string theirs, root;
};
WorldDifference world_first_difference(Communicator& host, const std::string& mine);

// Builds the grid from MPI's world (initialising MPI if needed). data_parallel = 0 means
// "world size / sequence_parallel". device_type CUDA picks this rank's local GPU
// (node-local rank modulo the GPU count). Fails with a message if the grid does not
// multiply to the world size.
std::shared_ptr<ProcessGrid> process_grid_create(int data_parallel, int sequence_parallel,
                                                 c10::DeviceType device_type);

}  // namespace longnet
