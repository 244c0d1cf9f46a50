// The NCCL back end of Communicator, for CUDA tensors. Each communicator owns a stream;
// a collective waits (via an event) for the caller's current stream, runs on its own stream,
// and wait() makes the caller's stream wait for it, so collectives overlap with compute and the
// host never blocks.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <nccl.h>

#include <atomic>

#include "longnet/parallel/communicator.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/watchdog.h"

#define LONGNET_CHECK_NCCL(call)                                                          \
  do {                                                                                    \
    ncclResult_t longnet_nccl_rc_ = (call);                                               \
    if (longnet_nccl_rc_ != ncclSuccess)                                                  \
      ::longnet::throw_library_error("NCCL", #call, ncclGetErrorString(longnet_nccl_rc_), \
                                     __FILE__, __LINE__);                                 \
  } while (0)

namespace longnet {
namespace {

ncclDataType_t nccl_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kLong:
      return ncclInt64;
    case at::kInt:
      return ncclInt32;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    default:
      TORCH_CHECK(false, "NCCL communicator: unsupported dtype ", t);
  }
}

void check_cuda_contiguous(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.is_cuda(), "NCCL communicator: ", what, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.is_contiguous(), "NCCL communicator: ", what, " must be contiguous");
}

class NcclWork : public CommWork {
 public:
  explicit NcclWork(std::shared_ptr<at::cuda::CUDAEvent> done) : done_(std::move(done)) {}
  void wait() override { done_->block(at::cuda::getCurrentCUDAStream()); }

 private:
  std::shared_ptr<at::cuda::CUDAEvent> done_;
};

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(MPI_Comm mpi_comm)
      : mpi_comm_(mpi_comm),
        device_(at::cuda::current_device()),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_)) {
    LONGNET_CHECK_MPI(MPI_Comm_rank(mpi_comm_, &rank_));
    LONGNET_CHECK_MPI(MPI_Comm_size(mpi_comm_, &size_));
    ncclUniqueId id;
    if (rank_ == 0) LONGNET_CHECK_NCCL(ncclGetUniqueId(&id));
    {
      CollectiveScope watched(collective_what("NCCL", "communicator set-up", rank_, size_));
      LONGNET_CHECK_MPI(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi_comm_));
      LONGNET_CHECK_NCCL(ncclCommInitRank(&comm_, size_, id, rank_));
    }
    live_ = std::make_shared<std::atomic<bool>>(true);
    // On a timeout the watchdog aborts the communicator, so that its kernels stop waiting.
    abort_hook_ = collective_abort_hook_add([comm = comm_, live = live_] {
      if (live->exchange(false)) ncclCommAbort(comm);
    });
  }
  ~NcclCommunicator() override {
    collective_abort_hook_remove(abort_hook_);
    bool destroy = false;  // (not while the watchdog polls this communicator)
    collective_synchronized([&] { destroy = live_->exchange(false); });
    if (comm_ && destroy) ncclCommDestroy(comm_);
    if (mpi_comm_ != MPI_COMM_NULL && mpi_comm_ != MPI_COMM_WORLD && mpi_is_initialized())
      MPI_Comm_free(&mpi_comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* backend() const override { return "nccl"; }
  MPI_Comm mpi_comm() const override { return mpi_comm_; }

  std::unique_ptr<CommWork> all_gather(const at::Tensor& in, const at::Tensor& out) override {
    check_cuda_contiguous(in, "all_gather input");
    check_cuda_contiguous(out, "all_gather output");
    TORCH_CHECK(out.numel() == in.numel() * size_ && out.dtype() == in.dtype(),
                "all_gather: output must hold ", size_, " x ", in.numel(), " elements of ",
                in.dtype(), ", got ", out.numel(), " of ", out.dtype());
    bytes_sent_ += in.nbytes();
    return enqueue("all-gather", {in, out}, [&](cudaStream_t s) {
      LONGNET_CHECK_NCCL(ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(),
                                       nccl_type(in.scalar_type()), comm_, s));
    });
  }

  std::unique_ptr<CommWork> reduce_scatter(const at::Tensor& in, const at::Tensor& out) override {
    check_cuda_contiguous(in, "reduce_scatter input");
    check_cuda_contiguous(out, "reduce_scatter output");
    TORCH_CHECK(in.numel() == out.numel() * size_ && out.dtype() == in.dtype(),
                "reduce_scatter: input must hold ", size_, " x ", out.numel(), " elements of ",
                out.dtype(), ", got ", in.numel(), " of ", in.dtype());
    bytes_sent_ += in.nbytes();
    return enqueue("reduce-scatter", {in, out}, [&](cudaStream_t s) {
      LONGNET_CHECK_NCCL(ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(),
                                           nccl_type(in.scalar_type()), ncclSum, comm_, s));
    });
  }

  std::unique_ptr<CommWork> all_reduce(const at::Tensor& t, ReduceOp op) override {
    check_cuda_contiguous(t, "all_reduce tensor");
    bytes_sent_ += t.nbytes();
    return enqueue("all-reduce", {t}, [&](cudaStream_t s) {
      LONGNET_CHECK_NCCL(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(),
                                       nccl_type(t.scalar_type()),
                                       op == ReduceOp::kSum ? ncclSum : ncclMax, comm_, s));
    });
  }

  void broadcast(const at::Tensor& t, int root) override {
    check_cuda_contiguous(t, "broadcast tensor");
    enqueue("broadcast", {t}, [&](cudaStream_t s) {
      LONGNET_CHECK_NCCL(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(),
                                       nccl_type(t.scalar_type()), root, comm_, s));
    })->wait();
  }

  void barrier() override {
    CollectiveScope watched(collective_what("MPI", "barrier", rank_, size_));
    LONGNET_CHECK_MPI(MPI_Barrier(mpi_comm_));
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    {
      CollectiveScope watched(collective_what("MPI", "communicator split", rank_, size_));
      LONGNET_CHECK_MPI(MPI_Comm_split(mpi_comm_, color, key, &sub));
    }
    return std::make_shared<NcclCommunicator>(sub);
  }

 private:
  template <typename F>
  std::unique_ptr<CommWork> enqueue(const char* op, std::initializer_list<at::Tensor> tensors,
                                    F&& launch) {
    c10::cuda::CUDAGuard guard(device_);
    auto caller = at::cuda::getCurrentCUDAStream(device_);
    at::cuda::CUDAEvent ready;
    ready.record(caller);
    ready.block(stream_);
    // The caching allocator must not hand these blocks out again before our stream is done.
    for (const auto& t : tensors)
      c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
    launch(stream_.stream());
    auto done = std::make_shared<at::cuda::CUDAEvent>();
    done->record(stream_);
    // The watchdog polls the event, and the communicator for errors NCCL reports later.
    collective_watch(collective_what("NCCL", op, rank_, size_),
                     [done, comm = comm_, live = live_, device = device_](std::string* why) {
                       // (without the guard this thread would make a context on GPU 0)
                       c10::cuda::CUDAGuard guard(device);
                       if (done->query()) return WatchState::kDone;
                       ncclResult_t async = ncclSuccess;
                       if (live->load() && ncclCommGetAsyncError(comm, &async) == ncclSuccess &&
                           async != ncclSuccess && async != ncclInProgress) {
                         *why = ncclGetErrorString(async);
                         return WatchState::kFailed;
                       }
                       return WatchState::kPending;
                     });
    return std::make_unique<NcclWork>(std::move(done));
  }

  MPI_Comm mpi_comm_;
  c10::DeviceIndex device_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
  std::shared_ptr<std::atomic<bool>> live_;  // false once destroyed or aborted
  int64_t abort_hook_ = 0;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::shared_ptr<Communicator> communicator_nccl_create(MPI_Comm mpi_comm) {
  MPI_Comm dup;
  {
    int rank = 0, size = 1;
    LONGNET_CHECK_MPI(MPI_Comm_rank(mpi_comm, &rank));
    LONGNET_CHECK_MPI(MPI_Comm_size(mpi_comm, &size));
    CollectiveScope watched(collective_what("MPI", "NCCL communicator set-up", rank, size));
    LONGNET_CHECK_MPI(MPI_Comm_dup(mpi_comm, &dup));
  }
  return std::make_shared<NcclCommunicator>(dup);
}

}  // namespace longnet
