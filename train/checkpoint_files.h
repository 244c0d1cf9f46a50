// Checkpoint files that survive crashes: written to a .tmp, fsynced and renamed, with an
// integrity record, so that a half-written or damaged file is detected and resuming falls back
// to the newest good one. The format is torch.save's (torch::pickle_save), readable in Python.
//
// Layout: dir/step_00000100.ckpt holds the caller's dict plus two entries,
//   "_longnet_format": "longnet-checkpoint-1"
//   "_longnet_crc32":  CRC-32 of every other entry's contents (tensor bytes, dtypes and shapes,
//                      numbers, strings, in dict order), independent of the zip layout.
// Tensors are stored on the CPU, pickled without TorchScript type tags, so Python reads a
// checkpoint with the defaults: torch.load(path) (weights_only=True). (Checkpoints of longnet
// before 2026-12 carried the tags: torch.load(path, weights_only=False) for those.)
// A directory is written by one job at a time (CheckpointDirLock).
#pragma once

#include <ATen/core/ivalue.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace longnet {

// "dir/step_00000100.ckpt".
std::string checkpoint_path(const std::string& dir, int64_t step);

// Writes `state` (string keys; values: tensors, numbers, strings, bools, None, and lists,
// tuples and dicts of those) as checkpoint `step` in `dir` (created if needed), then deletes
// the good checkpoints beyond the newest `keep` ones (never the one just written) and any stray
// .tmp files left by a crash. Only checkpoints that read back and verify count towards `keep`:
// one that does not (damaged, truncated, not ours) is reported on stderr and left alone, and
// never shields an older good one from deletion. Call it while holding the directory's
// CheckpointDirLock. Throws std::runtime_error on I/O failure, std::invalid_argument on a bad
// state. Returns nothing; the file is complete on disk when it returns.
//
// owner_of, when given, says whose a checkpoint is (e.g. the model it holds, from its config):
// retention then counts and deletes only the checkpoints whose owner equals the new one's; others
// (another model's, put there by hand) are reported and left as they are. Its text names the
// model ("(...)" when the config cannot be read), then optionally kOwnerRun and a phrase said
// when only that part differs ("it was written by the run of log.dir 'X'").
inline constexpr const char* kOwnerRun = "\nrun: ";
using CheckpointOwner = std::function<std::string(const c10::impl::GenericDict&)>;
void checkpoint_write(const std::string& dir, int64_t step, const c10::impl::GenericDict& state,
                      int keep, const CheckpointOwner& owner_of = nullptr);

// Entries of `dir` named as checkpoints or their temporary files (step_N.ckpt, step_N.ckpt.tmp)
// that are not regular files (a directory, a FIFO, a dangling link): a write to that name would
// fail after the interval of training it saves. Empty when there are none (or no dir).
std::vector<std::string> checkpoint_name_blockers(const std::string& dir);

// An advisory lock on a directory a training job writes (its checkpoint dir, its run folder),
// held while the job runs: flock on dir/.longnet.lock (which records the holder's host, pid and
// start time; opened without following a symbolic link), released when the process ends however
// it ends. The directory is created if needed. A second job asking for the same directory gets
// std::runtime_error naming the holder; `key` names the setting in messages.
class CheckpointDirLock {
 public:
  explicit CheckpointDirLock(const std::string& dir, const std::string& key = "checkpoint.dir");
  ~CheckpointDirLock();
  CheckpointDirLock(const CheckpointDirLock&) = delete;
  CheckpointDirLock& operator=(const CheckpointDirLock&) = delete;
  // Where the directory (or its lock file) was removed or replaced while the job ran: says so
  // (a warning), makes it again and locks it, so that the next write is not made in an unlocked
  // directory. Throws as the constructor does (another job took the path meanwhile).
  void renew();

 private:
  // One try: false when the lock was taken on a file that the path no longer names.
  bool acquire(const std::string& dir, const std::string& key);
  void lock(const std::string& dir);  // acquire, tried 4 times
  int fd_ = -1;
  std::string dir_, path_, key_;
  bool dir_made_ = false;  // the directory is this job's (make_dirs made it)
};

// Where `resumed` is a checkpoint under its temporary name (a stop between its write and its
// rename left DIR/step_N.ckpt.tmp, a regular file, and it verified), gives it its own name
// DIR/step_N.ckpt (where that is free; else a warning), so that the next checkpoint_write does
// not remove it with the leftovers of interrupted writes. Call before that write.
void checkpoint_temporary_promote(const std::string& dir, const std::string& resumed);

// checkpoint_read ran out of host memory: the file is not known to be damaged.
struct CheckpointMemoryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// checkpoint_read found a readable file that is no longnet checkpoint (no zip archive, a pickle
// of something else, a file Python's torch.save wrote): not damage, so a caller may say what
// else the file may be (e.g. a parameters file).
struct CheckpointKindError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads and verifies a checkpoint; returns the caller's dict (without the "_longnet_" entries).
// Throws std::runtime_error naming the file and the problem: missing, empty or truncated,
// corrupted (checksum mismatch or unreadable), not a longnet checkpoint (CheckpointKindError).
c10::impl::GenericDict checkpoint_read(const std::string& path);

// Complete checkpoints in `dir` as (step, path), newest first; no verification.
std::vector<std::pair<int64_t, std::string>> checkpoint_list(const std::string& dir);

// The newest checkpoint in `dir` that reads back and verifies, skipping damaged ones with a
// warning on stderr naming the file and why. nullopt when there is none (or no such dir).
// It reads each candidate fully; checkpoint_read it again to use it.
std::optional<std::string> checkpoint_latest(const std::string& dir);

}  // namespace longnet
