// Collectives over tensors within one group of ranks. NCCL serves CUDA tensors (on its own
// stream, ordered after the caller's stream with events); MPI serves CPU tensors, so every
// sequence-parallel code path runs, and is tested, on machines without a GPU.
#pragma once

#include <ATen/core/Tensor.h>
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>

namespace longnet {

enum class ReduceOp { kSum, kMax };

// A collective in flight. wait() makes its result visible: to the host on CPU, to work queued
// afterwards on the caller's current CUDA stream on GPU (no host synchronisation).
class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi" or "nccl".
  virtual const char* backend() const = 0;

  // in: any shape, contiguous. out: (size, *in.shape) contiguous; rank k's `in` lands in out[k].
  virtual std::unique_ptr<CommWork> all_gather(const at::Tensor& in, const at::Tensor& out) = 0;
  // in: (size, *out.shape) contiguous. out = sum over ranks of their in[this rank].
  virtual std::unique_ptr<CommWork> reduce_scatter(const at::Tensor& in, const at::Tensor& out) = 0;
  // In place over all ranks of the group.
  virtual std::unique_ptr<CommWork> all_reduce(const at::Tensor& t, ReduceOp op) = 0;
  // In place, blocking.
  virtual void broadcast(const at::Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // A communicator over the ranks of this group that pass the same color, ordered by key.
  // Collective over this group.
  virtual std::shared_ptr<Communicator> split(int color, int key) = 0;
  // The MPI communicator over the same ranks (for host-side control messages).
  virtual MPI_Comm mpi_comm() const = 0;

  // Payload bytes this rank handed to collectives since construction: `in` of all-gathers,
  // reduce-scatters and all-reduces.
  int64_t bytes_sent() const { return bytes_sent_; }
  void bytes_sent_reset() { bytes_sent_ = 0; }

 protected:
  int64_t bytes_sent_ = 0;
};

// The world over MPI, for CPU tensors. Requires MPI to be initialised.
std::shared_ptr<Communicator> communicator_mpi_world();

#ifdef LONGNET_WITH_CUDA
// An NCCL communicator over the ranks of `mpi_comm` (collective over them): the unique id is
// made on the group's rank 0 and broadcast over MPI. Uses the current CUDA device.
std::shared_ptr<Communicator> communicator_nccl_create(MPI_Comm mpi_comm);
#endif

// The world communicator for tensors on `device` (NCCL for CUDA, MPI for CPU).
std::shared_ptr<Communicator> communicator_world(const at::Device& device);

}  // namespace longnet
