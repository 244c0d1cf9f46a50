// The collective watchdog (see watchdog.h): one detached thread polls the watched collectives
// every 50 ms. Its state is allocated once and never freed, so the thread may outlive main().
#include "longnet/parallel/watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "longnet/core/errors.h"
#include "longnet/parallel/mpi_bootstrap.h"

namespace longnet {
namespace {

using Clock = std::chrono::steady_clock;

struct Entry {
  std::string what;
  Clock::time_point start;
  std::function<WatchState(std::string*)> poll;  // empty: a scope, done when it closes
  double extra_s = 0;                            // seconds beyond the timeout (CollectiveAllowance)
  std::string note;                              // why, for the message
};

// This thread's CollectiveAllowance.
thread_local double t_extra_s = 0;
thread_local std::string t_note;

struct State {
  std::mutex mu;
  std::map<int64_t, Entry> entries;
  std::map<int64_t, std::function<void()>> hooks;
  int64_t next_id = 1;
  std::atomic<double> timeout_s{600.0};
  bool thread_started = false;
  // Set when the process begins to exit: from then on CUDA may be unloading, an event query can
  // fail, and nothing is waited for any more, so the watchdog stands down.
  std::atomic<bool> exiting{false};
};

State& state() {
  static State* s = new State();  // never destroyed: the thread may run during exit
  return *s;
}

[[noreturn]] void end_job(const std::string& message) {
  State& s = state();
  std::fprintf(stderr, "%serror: %s\n", log_prefix().c_str(), message.c_str());
  std::fflush(stderr);
  // The hooks (ncclCommAbort) and the log file's write may block themselves; the alarm's
  // default action ends the process.
  ::alarm(30);
  log_file_error(message);  // (rank 0's train.log, as run_main records other errors)
  std::map<int64_t, std::function<void()>> hooks;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    hooks = s.hooks;
  }
  for (auto& [id, hook] : hooks) hook();
  // Not MPI_Abort: this is not the thread that initialised MPI. mpirun ends the other ranks when
  // one exits with a failure status before MPI_Finalize.
  std::_Exit(kExitFailure);
}

void watch_loop() {
  State& s = state();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (s.exiting.load()) return;
    std::string failure;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      const double limit = s.timeout_s.load();
      const auto now = Clock::now();
      for (auto it = s.entries.begin(); it != s.entries.end();) {
        std::string why;
        WatchState st = WatchState::kPending;
        if (it->second.poll) {
          try {
            st = it->second.poll(&why);
          } catch (const std::exception& e) {  // e.g. a CUDA error the event query reports
            why = e.what();
            why.resize(std::min(why.find('\n'), why.size()));
            st = WatchState::kFailed;
          }
        }
        if (st == WatchState::kDone) {
          it = s.entries.erase(it);
          continue;
        }
        const double waited = std::chrono::duration<double>(now - it->second.start).count();
        if (st == WatchState::kFailed) {
          failure = it->second.what + " failed: " + why +
                    "; a rank of its group died or failed. Ending the job.";
          break;
        }
        if (limit > 0 && waited > limit + it->second.extra_s) {
          char buf[64];
          std::snprintf(buf, sizeof(buf), "%.0f", limit + it->second.extra_s);
          failure = it->second.what + " has not finished after " + buf + " s" +
                    (it->second.note.empty() ? "" : " (" + it->second.note + ")") +
                    ": another rank of its group stalled, died or failed before reaching it. "
                    "Ending the job (the limit is train.collective_timeout_s; 0 waits forever).";
          break;
        }
        ++it;
      }
    }
    if (!failure.empty() && !s.exiting.load()) end_job(failure);
  }
}

int64_t add_entry(Entry e) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.thread_started) {
    std::atexit([] { state().exiting.store(true); });
    std::thread(watch_loop).detach();
    s.thread_started = true;
  }
  const int64_t id = s.next_id++;
  s.entries.emplace(id, std::move(e));
  return id;
}

}  // namespace

std::string collective_what(const char* backend, const char* op, int group_rank, int group_size) {
  return std::string(backend) + " " + op + " (rank " + std::to_string(group_rank) +
         " of a group of " + std::to_string(group_size) + ")";
}

void collective_timeout_set(double seconds) {
  state().timeout_s.store(seconds < 0 ? 0 : seconds);
}

double collective_timeout() {
  return state().timeout_s.load();
}

void collective_watch(std::string what, std::function<WatchState(std::string* why)> poll) {
  add_entry(Entry{std::move(what), Clock::now(), std::move(poll), t_extra_s, t_note});
}

CollectiveScope::CollectiveScope(std::string what)
    : id_(add_entry(Entry{std::move(what), Clock::now(), {}, t_extra_s, t_note})) {}

CollectiveAllowance::CollectiveAllowance(double extra_s, std::string why)
    : prev_extra_(t_extra_s), prev_why_(std::move(t_note)) {
  t_extra_s = extra_s > 0 ? extra_s : 0;
  t_note = std::move(why);
}

CollectiveAllowance::~CollectiveAllowance() {
  t_extra_s = prev_extra_;
  t_note = std::move(prev_why_);
}

CollectiveScope::~CollectiveScope() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.entries.erase(id_);
}

int64_t collective_abort_hook_add(std::function<void()> hook) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  const int64_t id = s.next_id++;
  s.hooks.emplace(id, std::move(hook));
  return id;
}

void collective_abort_hook_remove(int64_t id) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.hooks.erase(id);
}

void collective_synchronized(const std::function<void()>& fn) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  fn();
}

}  // namespace longnet
