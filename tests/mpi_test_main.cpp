// GoogleTest main for every test binary: initialises MPI when launched under mpirun, lets only
// rank 0 print the usual report, and makes every rank print its own failures with its rank.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "longnet/parallel/mpi_bootstrap.h"

namespace {

class RankFailurePrinter : public testing::EmptyTestEventListener {
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::cerr << longnet::log_prefix() << r.file_name() << ":" << r.line_number() << ": "
                << r.summary() << std::endl;
  }
};

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (launched_by_mpirun()) longnet::mpi_ensure_initialized();
  // An exception on one rank must end the job, not leave the others in a collective: let it
  // escape GoogleTest, so the process aborts and mpirun stops every rank.
  if (longnet::mpi_world_size() > 1) GTEST_FLAG_SET(catch_exceptions, false);
  if (longnet::mpi_world_rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter);
  }
  int rc = RUN_ALL_TESTS();
  // Every rank must agree: a failure on any rank fails the job.
  if (longnet::mpi_is_initialized()) {
    int any = rc != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    rc = any;
  }
  return rc;
}
