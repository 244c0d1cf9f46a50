// Error checks shared by every layer: one macro per library, each naming the call, the
// library's own message, file:line and the rank. Library code throws; main() prints once and
// ends the job (see parallel/mpi_bootstrap.h).
#pragma once

#include <stdexcept>
#include <string>

namespace longnet {

// The rank printed in error and log prefixes; -1 (the default) means "not under MPI".
// parallel/ sets it at start-up so that core/ stays free of MPI.
void log_set_rank(int rank);
int log_rank();
// "[rank 3] " or "" when not under MPI.
std::string log_prefix();

// Whether an error's message says memory ran out: LibTorch's host allocator ("can't allocate
// memory"), CUDA's caching allocator and others ("out of memory"). For errors that reach a
// handler as a plain c10::Error or std::exception (std::bad_alloc and c10::OutOfMemoryError are
// caught by type).
bool says_out_of_memory(const std::string& message);

// Builds "<what> failed: <detail> (file:line, rank R)" and throws std::runtime_error.
[[noreturn]] void throw_library_error(const char* library, const char* call,
                                      const std::string& detail, const char* file, int line);

}  // namespace longnet

#ifdef LONGNET_WITH_CUDA
#include <cuda_runtime_api.h>
#define LONGNET_CHECK_CUDA(call)                                                                \
  do {                                                                                          \
    cudaError_t longnet_err_ = (call);                                                          \
    if (longnet_err_ != cudaSuccess)                                                            \
      ::longnet::throw_library_error("CUDA", #call, cudaGetErrorString(longnet_err_), __FILE__, \
                                     __LINE__);                                                 \
  } while (0)
#endif
