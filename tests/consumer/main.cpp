// Uses installed longnet headers and libraries the way a downstream project would.
#include <ATen/ATen.h>

#include <iostream>

#include <longnet/longnet_build_info.h>
#include <longnet/parallel/communicator.h>
#include <longnet/parallel/mpi_bootstrap.h>

int main() {
  return longnet::run_main([] {
    auto comm = longnet::communicator_mpi_world();
    auto t = at::ones({4});
    comm->all_reduce(t, longnet::ReduceOp::kSum)->wait();
    TORCH_CHECK(at::equal(t, at::full({4}, float(comm->size()))), "consumer: wrong all-reduce");
    std::cout << "consumer: OK (longnet " << LONGNET_VERSION << ")" << std::endl;
    return 0;
  });
}
