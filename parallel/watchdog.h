// The collective watchdog: a rank that stalls, dies without its process ending, or fails inside
// NCCL must not leave the others waiting forever. Every collective is watched from a background
// thread: one still unfinished after the timeout (or an NCCL communicator that reports an
// asynchronous error) prints which collective on which rank, runs the abort hooks (NCCL
// communicators abort, so no kernel keeps waiting), and ends this process with a failure status,
// upon which mpirun ends the rest of the job.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace longnet {

// Seconds a collective may take before the job is ended; 0 waits forever. Default 600
// (train.collective_timeout_s sets it for training).
void collective_timeout_set(double seconds);
double collective_timeout();

enum class WatchState { kPending, kDone, kFailed };

// Watches an operation that completes on its own (an NCCL collective on its stream): poll() runs
// on the watchdog thread until it returns kDone; kFailed (with *why set) or the timeout ends the
// job. `what` names the collective and its group.
void collective_watch(std::string what, std::function<WatchState(std::string* why)> poll);

// Host code blocked in a collective (an MPI call or wait) for the lifetime of the scope.
class CollectiveScope {
 public:
  explicit CollectiveScope(std::string what);
  ~CollectiveScope();
  CollectiveScope(const CollectiveScope&) = delete;
  CollectiveScope& operator=(const CollectiveScope&) = delete;

 private:
  int64_t id_;
};

// Collectives that this thread starts inside the scope may take extra_s seconds more than the
// timeout: waits whose length is known to grow with work another rank does outside collectives
// (the barrier where every rank waits for rank 0 to write a checkpoint). `why` is added to the
// message should one still time out. Scopes nest; the innermost one counts.
class CollectiveAllowance {
 public:
  CollectiveAllowance(double extra_s, std::string why);
  ~CollectiveAllowance();
  CollectiveAllowance(const CollectiveAllowance&) = delete;
  CollectiveAllowance& operator=(const CollectiveAllowance&) = delete;

 private:
  double prev_extra_;
  std::string prev_why_;
};

// "NCCL all-gather (rank 1 of a group of 4)": how the watchdog names a collective.
std::string collective_what(const char* backend, const char* op, int group_rank, int group_size);

// Runs on the watchdog thread just before it ends the job (e.g. ncclCommAbort). Returns an id
// for collective_abort_hook_remove.
int64_t collective_abort_hook_add(std::function<void()> hook);
void collective_abort_hook_remove(int64_t id);
// Runs fn while no poll() runs (e.g. to retire what the polls read).
void collective_synchronized(const std::function<void()>& fn);

}  // namespace longnet
