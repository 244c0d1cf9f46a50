// The collective watchdog (parallel/watchdog.h). It ends the process it runs in, so each case
// runs in a child process forked from a parent in which no collective was watched yet (the
// watchdog's thread is not inherited by a fork): a binary of its own.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>

#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/watchdog.h"

namespace longnet {
namespace {

// Runs fn in a child process; returns its exit status (-1 on a signal) and its stderr.
std::pair<int, std::string> in_child(const std::function<void()>& fn) {
  char path[] = "/tmp/longnet_watchdog_XXXXXX";
  const int fd = ::mkstemp(path);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fd, 2);
    fn();
    std::_Exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream in(path);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::close(fd);
  ::unlink(path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

TEST(Watchdog, StalledCollectiveEndsTheProcessNamingIt) {
  if (mpi_world_size() > 1) GTEST_SKIP() << "forks: run on one rank";
  const auto t0 = std::chrono::steady_clock::now();
  auto [rc, err] = in_child([] {
    collective_timeout_set(0.3);
    CollectiveScope scope("MPI all-reduce (rank 0 of a group of 2)");
    std::this_thread::sleep_for(std::chrono::seconds(20));
  });
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(rc, kExitFailure);
  EXPECT_LT(took, 10.0);
  EXPECT_NE(err.find("MPI all-reduce (rank 0 of a group of 2) has not finished after 0 s"),
            std::string::npos)
      << err;
}

TEST(Watchdog, FinishedCollectivesAndZeroTimeoutLeaveTheProcessAlone) {
  if (mpi_world_size() > 1) GTEST_SKIP() << "forks: run on one rank";
  auto [rc, err] = in_child([] {
    collective_timeout_set(0.5);
    for (int i = 0; i < 20; ++i) {
      CollectiveScope scope("a quick one");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    collective_timeout_set(0);  // waits forever
    CollectiveScope slow("a slow one");
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
  });
  EXPECT_EQ(rc, 0) << err;
  EXPECT_EQ(err.find("has not finished"), std::string::npos) << err;
}

// An allowance lengthens the limit of the collectives started inside it (and names why in the
// message); outside it the plain timeout holds again.
TEST(Watchdog, AllowanceLengthensTheLimitInsideItsScope) {
  if (mpi_world_size() > 1) GTEST_SKIP() << "forks: run on one rank";
  auto [rc, err] = in_child([] {
    collective_timeout_set(0.3);
    {
      CollectiveAllowance allow(1.5, "waiting for rank 0 to write checkpoint X");
      CollectiveScope scope("MPI barrier (rank 1 of a group of 2)");
      std::this_thread::sleep_for(std::chrono::milliseconds(900));
    }
    CollectiveScope late("MPI barrier (rank 1 of a group of 2)");
    std::this_thread::sleep_for(std::chrono::seconds(20));
  });
  EXPECT_EQ(rc, kExitFailure);
  EXPECT_NE(err.find("has not finished after 0 s: another rank"), std::string::npos) << err;
  auto [rc2, err2] = in_child([] {
    collective_timeout_set(0.3);
    CollectiveAllowance allow(0.5, "waiting for rank 0 to write checkpoint X");
    CollectiveScope scope("MPI barrier (rank 1 of a group of 2)");
    std::this_thread::sleep_for(std::chrono::seconds(20));
  });
  EXPECT_EQ(rc2, kExitFailure);
  EXPECT_NE(err2.find("has not finished after 1 s (waiting for rank 0 to write checkpoint X)"),
            std::string::npos)
      << err2;
}

TEST(Watchdog, FailedPollRunsTheAbortHooksAndEndsTheProcess) {
  if (mpi_world_size() > 1) GTEST_SKIP() << "forks: run on one rank";
  auto [rc, err] = in_child([] {
    collective_timeout_set(100);
    collective_abort_hook_add([] { std::fprintf(stderr, "abort hook ran\n"); });
    int polls = 0;
    collective_watch("NCCL all-gather (rank 1 of a group of 4)", [&polls](std::string* why) {
      if (++polls < 3) return WatchState::kPending;
      *why = "unhandled cuda error";
      return WatchState::kFailed;
    });
    std::this_thread::sleep_for(std::chrono::seconds(20));
  });
  EXPECT_EQ(rc, kExitFailure);
  EXPECT_NE(err.find("NCCL all-gather (rank 1 of a group of 4) failed: unhandled cuda error"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("abort hook ran"), std::string::npos) << err;
}

}  // namespace
}  // namespace longnet
