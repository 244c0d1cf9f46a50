// MPI start-up, rank-prefixed logging and the job-ending error path (see mpi_bootstrap.h).
#include "longnet/parallel/mpi_bootstrap.h"

#include <c10/util/Exception.h>
#include <c10/util/Logging.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "longnet/core/errors.h"
#include "longnet/core/file_util.h"

namespace longnet {

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, len);
}

namespace {
int g_log_fd = -1;  // rank 0's copy of its output (log_file_open)
std::string g_log_path;
std::mutex g_log_file_mutex;  // (the watchdog's thread writes its error too)

int log_file_open_fd(const std::string& path) {
  return ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

void log_file_write(const std::string& text) {
  const std::lock_guard<std::mutex> lock(g_log_file_mutex);
  if (g_log_fd < 0) return;
  const std::string line = text + "\n";  // one write: a crash loses nothing written before it
  if (fd_write_all(g_log_fd, line.data(), line.size())) return;
  // A full disk, say: said once on the console, and the file gets no more lines; the run goes
  // on, its output on the console only.
  const std::string why = std::strerror(errno);
  ::close(g_log_fd);
  g_log_fd = -1;
  std::cerr << log_prefix() << "warning: train log '" << g_log_path << "': " << why
            << "; its last line may be cut short, and it gets no more lines (they are on the "
               "console)"
            << std::endl;
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
}  // namespace

void mpi_ensure_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  LONGNET_CHECK_MPI(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes so that LONGNET_CHECK_MPI can name them.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::atexit(finalize_at_exit);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  log_set_rank(size > 1 ? rank : -1);
}

bool mpi_is_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

int mpi_world_rank() {
  if (!mpi_is_initialized()) return 0;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int mpi_world_size() {
  if (!mpi_is_initialized()) return 1;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

int run_main(const std::function<int()>& fn) {
  // A failed enforce (an allocation that does not fit, among others) must throw, to be reported
  // below, not abort the process: in this process the flag is found set at start.
  FLAGS_caffe2_use_fatal_for_enforce = false;
  std::string message;
  bool out_of_memory = false;
  try {
    return fn();
  } catch (const c10::OutOfMemoryError& e) {
    message = e.what_without_backtrace();
    out_of_memory = true;
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
    out_of_memory = says_out_of_memory(message);
  } catch (const std::bad_alloc&) {
    message = "out of host memory (std::bad_alloc)";
    out_of_memory = true;
  } catch (const std::exception& e) {
    message = e.what();
    out_of_memory = says_out_of_memory(message);
  } catch (...) {
    message = "unknown exception";
  }
  signal_note_off();         // (a SIGTERM from here on is mpirun ending the job)
  made_dirs_remove_empty();  // (output folders this failed command made and left empty)
  // c10::Error messages carry a C++ backtrace after the first line; users need the first part.
  auto cut = message.find("\nException raised from");
  if (cut != std::string::npos) message.resize(cut);
  if (out_of_memory)
    message +=
        "\n(the sizes asked for do not fit in memory: use a smaller model, sequence or "
        "batch, or more ranks)";
  // Most errors (a config, a file) are found by every rank alike: the other ranks give rank 0 a
  // moment to report and end the job, so that the user reads one message, not one per rank. An
  // error of this rank alone is still reported, a second later.
  // (Errors before MPI starts, a config's say, are found under mpirun too: the launcher's
  // environment gives the rank.)
  const char* env_rank = std::getenv("OMPI_COMM_WORLD_RANK");
  const bool other_rank = mpi_is_initialized()
                              ? mpi_world_size() > 1 && mpi_world_rank() != 0
                              : env_rank != nullptr && std::string(env_rank) != "0";
  if (other_rank) std::this_thread::sleep_for(std::chrono::seconds(1));
  std::cerr << log_prefix() << "error: " << message << std::endl;
  log_file_write("error: " + message);
  std::fflush(stderr);
  if (mpi_is_initialized() && mpi_world_size() > 1) MPI_Abort(MPI_COMM_WORLD, kExitFailure);
  return kExitFailure;
}

namespace {
int g_stdout_errno = 0;
}  // namespace

void log_info(const std::string& line) {
  if (mpi_world_rank() != 0) return;
  errno = 0;
  std::cout << line << std::endl;
  if (!std::cout && g_stdout_errno == 0) g_stdout_errno = errno;
  log_file_write(line);
}

int log_stdout_errno() {
  return g_stdout_errno;
}

void log_warning(const std::string& message) {
  std::cerr << log_prefix() << "warning: " << message << std::endl;
  log_file_write("warning: " + message);
}

void log_file_error(const std::string& message) {
  log_file_write("error: " + message);
}

void log_file_open(const std::string& path) {
  if (mpi_world_rank() != 0) return;
  output_file_prepare(path, "train log (log.dir)");
  const int fd = log_file_open_fd(path);
  if (fd < 0)
    throw std::runtime_error("train log '" + path +
                             "': cannot open it for appending: " + std::strerror(errno));
  const std::lock_guard<std::mutex> lock(g_log_file_mutex);
  if (g_log_fd >= 0) ::close(g_log_fd);
  g_log_fd = fd;
  g_log_path = path;
}

bool log_file_renew() {
  const std::lock_guard<std::mutex> lock(g_log_file_mutex);
  const int before = g_log_fd;
  g_log_fd =
      file_relink_if_removed(g_log_fd, g_log_path, [&] { return log_file_open_fd(g_log_path); });
  return g_log_fd != before;
}

}  // namespace longnet
