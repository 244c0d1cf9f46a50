// Communicator tests: MPI over CPU tensors at every world size CTest launches (1, 2, 4), and a
// GPU round trip through NCCL (skipped without a GPU).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "longnet/parallel/communicator.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"

namespace longnet {
namespace {

// Random values that every rank can regenerate for any rank.
at::Tensor rank_tensor(int rank, at::IntArrayRef shape, at::ScalarType dtype) {
  at::manual_seed(1234 + rank);
  return at::randn(shape, at::TensorOptions().dtype(dtype));
}

class CommunicatorMpi : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(CommunicatorMpi, AllGatherMatchesEveryRanksInput) {
  auto comm = communicator_mpi_world();
  const int n = comm->size();
  auto in = rank_tensor(comm->rank(), {3, 37}, GetParam());
  auto out = at::empty({n, 3, 37}, in.options());
  comm->all_gather(in, out)->wait();
  for (int k = 0; k < n; ++k) EXPECT_TRUE(at::equal(out[k], rank_tensor(k, {3, 37}, GetParam())));
  EXPECT_EQ(comm->bytes_sent(), static_cast<int64_t>(in.nbytes()));
}

TEST_P(CommunicatorMpi, ReduceScatterSumsEachSlot) {
  auto comm = communicator_mpi_world();
  const int n = comm->size(), r = comm->rank();
  auto in = rank_tensor(r, {n, 17}, GetParam());
  auto out = at::empty({17}, in.options());
  comm->reduce_scatter(in, out)->wait();
  auto expect = at::zeros({17}, at::kDouble);
  for (int k = 0; k < n; ++k) expect += rank_tensor(k, {n, 17}, GetParam())[r].to(at::kDouble);
  double tol = GetParam() == at::kBFloat16 ? 3e-2 : 1e-5;
  EXPECT_TRUE(at::allclose(out.to(at::kDouble), expect, tol, tol));
}

TEST_P(CommunicatorMpi, AllReduceSumAndMax) {
  auto comm = communicator_mpi_world();
  const int n = comm->size(), r = comm->rank();
  auto t = rank_tensor(r, {5, 7}, GetParam());
  auto m = t.clone();
  comm->all_reduce(t, ReduceOp::kSum)->wait();
  comm->all_reduce(m, ReduceOp::kMax)->wait();
  auto sum = at::zeros({5, 7}, at::kDouble);
  auto max = rank_tensor(0, {5, 7}, GetParam()).to(at::kDouble);
  for (int k = 0; k < n; ++k) {
    auto x = rank_tensor(k, {5, 7}, GetParam()).to(at::kDouble);
    sum += x;
    max = at::maximum(max, x);
  }
  double tol = GetParam() == at::kBFloat16 ? 3e-2 : 1e-5;
  EXPECT_TRUE(at::allclose(t.to(at::kDouble), sum, tol, tol));
  EXPECT_TRUE(at::allclose(m.to(at::kDouble), max, tol, tol));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CommunicatorMpi,
                         ::testing::Values(at::kFloat, at::kDouble, at::kBFloat16));

TEST(ProcessGrid, SequenceGroupsAreConsecutiveRanks) {
  const int world = mpi_world_size();
  for (int sp = 1; sp <= world; ++sp) {
    if (world % sp) continue;
    auto grid = process_grid_create(0, sp, c10::kCPU);
    EXPECT_EQ(grid->data_parallel * sp, world);
    EXPECT_EQ(grid->sp->size(), sp);
    EXPECT_EQ(grid->sp->rank(), grid->sp_index);
    EXPECT_EQ(grid->dp->size(), world / sp);
    // The sp group gathers the world ranks dp_index*sp + [0, sp).
    auto mine = at::full({1}, static_cast<int64_t>(grid->world_rank), at::kLong);
    auto all = at::empty({sp, 1}, at::kLong);
    grid->sp->all_gather(mine, all)->wait();
    for (int k = 0; k < sp; ++k) EXPECT_EQ(all[k].item<int64_t>(), grid->dp_index * sp + k);
    // Segment groups of span 1..sp hold consecutive sp ranks.
    for (int span = 1; span <= sp; ++span) {
      auto g = grid->segment_group(span);
      int first = grid->sp_index / span * span;
      EXPECT_EQ(g->size(), std::min(span, sp - first));
      EXPECT_EQ(g->rank(), grid->sp_index - first);
    }
  }
}

TEST(ProcessGrid, RejectsGridThatDoesNotMatchWorld) {
  const int world = mpi_world_size();
  try {
    process_grid_create(world + 1, 1, c10::kCPU);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match the world size"), std::string::npos)
        << e.what();
  }
}

#ifdef LONGNET_WITH_CUDA
TEST(CommunicatorNccl, AllGatherRoundTripOnGpu) {
  if (!at::cuda::is_available()) GTEST_SKIP() << "no GPU on this machine";
  mpi_ensure_initialized();
  // NCCL needs one GPU per rank of a communicator.
  if (mpi_world_size() > at::cuda::device_count())
    GTEST_SKIP() << mpi_world_size() << " ranks but " << int(at::cuda::device_count()) << " GPUs";
  auto grid = process_grid_create(0, 1, c10::kCUDA);
  auto& comm = *grid->world;
  ASSERT_STREQ(comm.backend(), "nccl");
  const int n = comm.size();
  auto in = rank_tensor(comm.rank(), {1000}, at::kBFloat16).to(grid->device);
  auto out = at::empty({n, 1000}, in.options());
  comm.all_gather(in, out)->wait();
  for (int k = 0; k < n; ++k)
    EXPECT_TRUE(at::equal(out[k].cpu(), rank_tensor(k, {1000}, at::kBFloat16)));
  auto s = at::ones({n, 64}, in.options().dtype(at::kFloat));
  auto r = at::empty({64}, s.options());
  comm.reduce_scatter(s, r)->wait();
  EXPECT_TRUE(at::equal(r.cpu(), at::full({64}, float(n))));
}
#endif

}  // namespace
}  // namespace longnet
