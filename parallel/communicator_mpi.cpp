// The MPI back end of Communicator, for CPU tensors. Non-blocking MPI calls stand in for the
// NCCL stream so that the calling code is the same on both back ends.
#include <ATen/ATen.h>

#include <vector>

#include "longnet/parallel/communicator.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/watchdog.h"

namespace longnet {
namespace {

MPI_Datatype mpi_reduce_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kLong:
      return MPI_INT64_T;
    case at::kInt:
      return MPI_INT32_T;
    case at::kByte:
      return MPI_UINT8_T;
    default:
      return MPI_DATATYPE_NULL;
  }
}

void check_cpu_contiguous(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), "MPI communicator: ", what, " must be a CPU tensor, got ",
              t.device());
  TORCH_CHECK(t.is_contiguous(), "MPI communicator: ", what, " must be contiguous");
  // MPI counts are int; the CPU path moves test- and tiny-model-sized tensors only.
  TORCH_CHECK(t.nbytes() <= static_cast<size_t>(INT32_MAX), "MPI communicator: ", what, " of ",
              t.nbytes(), " bytes is over MPI's 2 GiB count limit");
}

// Waits on an MPI request, then copies a float staging buffer back into a low-precision target
// (MPI cannot add bfloat16 or half). Holds every buffer the request uses until it completes.
class MpiWork : public CommWork {
 public:
  MpiWork(std::string what, MPI_Request req, std::vector<at::Tensor> buffers,
          at::Tensor staged = {}, at::Tensor target = {})
      : what_(std::move(what)),
        req_(req),
        buffers_(std::move(buffers)),
        staged_(std::move(staged)),
        target_(std::move(target)) {}
  ~MpiWork() override {
    if (req_ == MPI_REQUEST_NULL) return;
    CollectiveScope watched(what_);
    MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    if (req_ != MPI_REQUEST_NULL) {
      CollectiveScope watched(what_);
      LONGNET_CHECK_MPI(MPI_Wait(&req_, MPI_STATUS_IGNORE));
    }
    if (staged_.defined() && target_.defined()) {
      target_.copy_(staged_);
      staged_ = at::Tensor();
    }
    buffers_.clear();
  }

 private:
  std::string what_;
  MPI_Request req_;
  std::vector<at::Tensor> buffers_;
  at::Tensor staged_, target_;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    LONGNET_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
    LONGNET_CHECK_MPI(MPI_Comm_size(comm_, &size_));
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_NULL && mpi_is_initialized()) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "mpi"; }
  MPI_Comm mpi_comm() const override { return comm_; }

  std::unique_ptr<CommWork> all_gather(const at::Tensor& in, const at::Tensor& out) override {
    check_cpu_contiguous(in, "all_gather input");
    check_cpu_contiguous(out, "all_gather output");
    TORCH_CHECK(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(),
                "all_gather: output must hold ", size_, " x ", in.numel(), " elements of ",
                in.dtype(), ", got ", out.numel(), " of ", out.dtype());
    bytes_sent_ += in.nbytes();
    MPI_Request req;
    LONGNET_CHECK_MPI(MPI_Iallgather(in.data_ptr(), static_cast<int>(in.nbytes()), MPI_BYTE,
                                     out.data_ptr(), static_cast<int>(in.nbytes()), MPI_BYTE, comm_,
                                     &req));
    return std::make_unique<MpiWork>(describe("all-gather"), req, std::vector<at::Tensor>{in, out});
  }

  std::unique_ptr<CommWork> reduce_scatter(const at::Tensor& in, const at::Tensor& out) override {
    check_cpu_contiguous(in, "reduce_scatter input");
    check_cpu_contiguous(out, "reduce_scatter output");
    TORCH_CHECK(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(),
                "reduce_scatter: input must hold ", size_, " x ", out.numel(), " elements of ",
                out.dtype(), ", got ", in.numel(), " of ", in.dtype());
    bytes_sent_ += in.nbytes();
    auto [send, recv, staged] = stage(in, out);
    MPI_Request req;
    LONGNET_CHECK_MPI(
        MPI_Ireduce_scatter_block(send.data_ptr(), recv.data_ptr(), static_cast<int>(recv.numel()),
                                  mpi_reduce_type(recv.scalar_type()), MPI_SUM, comm_, &req));
    return std::make_unique<MpiWork>(describe("reduce-scatter"), req,
                                     std::vector<at::Tensor>{in, out, send, recv},
                                     staged ? recv : at::Tensor(), staged ? out : at::Tensor());
  }

  std::unique_ptr<CommWork> all_reduce(const at::Tensor& t, ReduceOp op) override {
    check_cpu_contiguous(t, "all_reduce tensor");
    bytes_sent_ += t.nbytes();
    auto [send, recv, staged] = stage(t, t);
    MPI_Request req;
    LONGNET_CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, recv.data_ptr(), static_cast<int>(recv.numel()),
                                     mpi_reduce_type(recv.scalar_type()),
                                     op == ReduceOp::kSum ? MPI_SUM : MPI_MAX, comm_, &req));
    return std::make_unique<MpiWork>(describe("all-reduce"), req,
                                     std::vector<at::Tensor>{t, send, recv},
                                     staged ? recv : at::Tensor(), staged ? t : at::Tensor());
  }

  void broadcast(const at::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast tensor");
    CollectiveScope watched(describe("broadcast"));
    LONGNET_CHECK_MPI(MPI_Bcast(t.data_ptr(), static_cast<int>(t.nbytes()), MPI_BYTE, root, comm_));
  }

  void barrier() override {
    CollectiveScope watched(describe("barrier"));
    LONGNET_CHECK_MPI(MPI_Barrier(comm_));
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    {
      CollectiveScope watched(describe("communicator split"));
      LONGNET_CHECK_MPI(MPI_Comm_split(comm_, color, key, &sub));
    }
    return std::make_shared<MpiCommunicator>(sub);
  }

 private:
  // MPI reduces float, double and integers; other types go through a float32 copy.
  // Returns (send buffer, receive buffer, whether a staging copy is used).
  std::tuple<at::Tensor, at::Tensor, bool> stage(const at::Tensor& in, const at::Tensor& out) {
    if (mpi_reduce_type(in.scalar_type()) != MPI_DATATYPE_NULL) return {in, out, false};
    TORCH_CHECK(at::isFloatingType(in.scalar_type()), "MPI communicator: cannot reduce ",
                in.dtype());
    auto send = in.to(at::kFloat);
    auto recv = (in.data_ptr() == out.data_ptr()) ? send : at::empty(out.sizes(), send.options());
    return {send, recv, true};
  }

  std::string describe(const char* op) const { return collective_what("MPI", op, rank_, size_); }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::shared_ptr<Communicator> communicator_mpi_world() {
  mpi_ensure_initialized();
  MPI_Comm dup;
  {
    CollectiveScope watched(
        collective_what("MPI", "world communicator set-up", mpi_world_rank(), mpi_world_size()));
    LONGNET_CHECK_MPI(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
  }
  return std::make_shared<MpiCommunicator>(dup);
}

std::shared_ptr<Communicator> communicator_world(const at::Device& device) {
  if (device.is_cuda()) {
#ifdef LONGNET_WITH_CUDA
    mpi_ensure_initialized();
    return communicator_nccl_create(MPI_COMM_WORLD);
#else
    TORCH_CHECK(false,
                "communicator_world: this build of longnet has no CUDA/NCCL path "
                "(configure with -DLONGNET_CUDA=ON on a machine with CUDA)");
#endif
  }
  return communicator_mpi_world();
}

}  // namespace longnet
