// MPI start-up and shutdown, and the one place where an error ends the job: run_main() catches
// what library code throws, prints it once per rank with the rank prefix, and calls MPI_Abort
// so that no other rank is left waiting in a collective.
#pragma once

#include <mpi.h>

#include <functional>
#include <string>

#include "longnet/core/errors.h"

#define LONGNET_CHECK_MPI(call)                                                              \
  do {                                                                                       \
    int longnet_rc_ = (call);                                                                \
    if (longnet_rc_ != MPI_SUCCESS)                                                          \
      ::longnet::throw_library_error("MPI", #call, ::longnet::mpi_error_string(longnet_rc_), \
                                     __FILE__, __LINE__);                                    \
  } while (0)

namespace longnet {

std::string mpi_error_string(int code);

// Initialises MPI once (MPI_THREAD_FUNNELED), sets the log rank, and finalises at exit.
// Safe to call more than once.
void mpi_ensure_initialized();
bool mpi_is_initialized();
int mpi_world_rank();
int mpi_world_size();

// Exit status used when a rank aborts the job after an error.
constexpr int kExitFailure = 1;

// Runs fn. On an exception prints "[rank R] error: ..." to stderr and, when MPI runs with more
// than one rank, calls MPI_Abort so every rank ends; returns fn's status otherwise.
int run_main(const std::function<int()>& fn);

// Prints on rank 0 only (or always when not under MPI), and appends to the log file if one is
// open.
void log_info(const std::string& line);
// The errno of log_info's first failed write to stdout (a full disk), 0 when none failed: a
// later flush has none to read.
int log_stdout_errno();

// From now on rank 0's log lines, and its error should the job fail, are also appended to
// `path` (a run's train.log), created if needed. Throws std::runtime_error naming the path when it
// cannot be written. Other ranks ignore the call.
void log_file_open(const std::string& path);
// The train log removed while the job runs (the file, or its run folder): made again at its path
// with every line written so far (core/file_util.h file_relink_if_removed). True when it was.
bool log_file_renew();
// Prints "warning: message" (with the rank's prefix) to stderr on the calling rank, and appends
// it to that file, if one is open: warnings of retention, resume and files reach train.log too.
void log_warning(const std::string& message);
// Appends "error: message" to that file, if one is open (for errors that end the job without
// run_main: the watchdog's). Safe from another thread.
void log_file_error(const std::string& message);

}  // namespace longnet
