// Small POSIX file helpers shared by every layer: directories, and the checks every input and
// output path gets before it is opened (a FIFO blocks its opener, a device never ends, a
// directory is not a file). POSIX calls rather than std::filesystem: libtorch.so exports
// std::filesystem symbols of another build that the dynamic linker may bind to, and they crash.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace longnet {

// mkdir -p. Returns false with errno set on failure (including "exists but is not a directory").
bool make_dirs(const std::string& dir);
// mkdir -p of the directory part of path (nothing when path has none).
bool make_parent_dirs(const std::string& path);
// Removes the directories make_dirs created in this process that are still empty, newest first
// (a command that fails leaves no empty output folders behind; one holding anything stays).
void made_dirs_remove_empty();
// Whether make_dirs made `dir` (a trailing '/' ignored) in this process.
bool dir_made_here(const std::string& dir);

// What a path is (symlinks followed).
enum class PathKind { kMissing, kFile, kDirectory, kOther };
PathKind path_kind(const std::string& path);
// "a FIFO", "a character device", ... for messages.
std::string path_kind_text(const std::string& path);

// Reads the whole regular file `path` of at most max_bytes. Throws std::runtime_error naming
// `what` and the path when it is missing, not a regular file (checked without blocking: a FIFO
// is refused, not opened for reading), larger than max_bytes, or unreadable.
std::string file_read_bounded(const std::string& path, const std::string& what, uint64_t max_bytes);

// Opens the regular file `path` for reading (O_RDONLY | O_CLOEXEC), refusing anything that is not
// a regular file without blocking on it. Returns the descriptor; throws std::runtime_error naming
// `what` otherwise. *size gets the file's size.
int file_open_regular(const std::string& path, const std::string& what, uint64_t* size);

// What an existing output file must hold for longnet to replace it (or append to it): only a
// file of the kind the output writes is written over, never a model, a dataset or a config.
// Each kind accepts an empty file, or one that starts as longnet writes that kind: any other
// JSON (a dataset manifest, an export's config.json, a corpus in JSON lines) is never replaced.
enum class OutputContent {
  kAny,      // any regular file (outputs whose callers check the kind themselves)
  kResults,  // a results file of `longnet bench` / `longnet eval`: {"command":"longnet ...
  kMetrics,  // training metrics, JSON lines: {"step":...
  kTrace,    // a Kineto / Chrome trace: a JSON object with "schemaVersion" or "traceEvents" first
  kImage,    // a plot: a PNG, SVG or PDF
};

// Prepares an output file the job will append to or replace: its directory is created if needed
// and must be writable (a probe file is created and removed there), and the path must be absent
// or a regular file it can write whose contents are of the kind `content` names. Throws
// std::runtime_error naming `what`, the path and the fix. An existing checkpoint (a file named
// step_N.ckpt) is refused too.
void output_file_prepare(const std::string& path, const std::string& what,
                         OutputContent content = OutputContent::kAny);
// Throws std::runtime_error unless the output `path` is none of the job's inputs (the same file,
// also through a symbolic or hard link) and lies inside none of those that are directories (the
// directory itself included). Empty inputs are skipped.
void output_not_input(const std::string& path, const std::vector<std::string>& inputs,
                      const std::string& what);
// Whether the file name of `path` is a training checkpoint's: step_N.ckpt (or its .tmp).
bool is_checkpoint_name(const std::string& path);
// The same for an output directory (created if needed).
void output_dir_prepare(const std::string& dir, const std::string& what);

// Creates `path` as a new, empty regular file to write (the temporary file of an atomic write):
// whatever entry had that name (a leftover of a crash, or a symbolic or hard link planted there)
// is unlinked first, and the open neither follows a link nor reuses a file (O_EXCL | O_NOFOLLOW),
// so the write never reaches a file elsewhere. Returns the descriptor, or -1 with errno set.
int open_fresh(const std::string& path);
// A temporary file that the process removes if SIGINT, SIGTERM, SIGHUP or SIGUSR1 ends it while the
// guard lives (a build interrupted from the terminal leaves no partial file behind); the process
// then ends by that signal as before. Needs temp_files_remove_on_signal() (the CLI calls it at
// start); a command that handles those signals itself (train) replaces the handlers. Holds up to
// 256 paths at a time; beyond that a path is simply not removed.
class TempFileOnSignal {
 public:
  explicit TempFileOnSignal(const std::string& path);
  ~TempFileOnSignal();
  TempFileOnSignal(const TempFileOnSignal&) = delete;
  TempFileOnSignal& operator=(const TempFileOnSignal&) = delete;

 private:
  int slot_ = -1;
};
// Installs the handlers for TempFileOnSignal (where a signal is not ignored already); they say
// "longnet: stopped by SIGINT" (or SIGTERM, SIGHUP, SIGUSR1) on stderr, on rank 0 only under
// mpirun.
void temp_files_remove_on_signal();
// From now on those handlers say nothing (an error is being reported, and a signal that ends
// the process then is the launcher's).
void signal_note_off();

// From now on, SIGINT, SIGTERM, SIGUSR1 and SIGHUP do not end the process: they set a flag that
// long work polls at safe points (a training step, a generated token) to stop cleanly, and a
// late one (during the teardown) is harmless; a second SIGINT or SIGTERM ends it at once,
// removing TempFileOnSignal's files first. A hang-up the process ignores (nohup) stays
// ignored. Replaces TempFileOnSignal's handlers; clears the flag.
void stop_signals_catch();
// The last of those signals caught since stop_signals_catch(), 0 if none.
int stop_signal_caught();

// Writes all n bytes to fd (retrying interrupted and short writes). False with errno set on an
// error (a write that makes no progress sets ENOSPC).
bool fd_write_all(int fd, const char* p, size_t n);

// A file this process appends to, removed while it is held open (it, or a folder above it: its
// link count is 0), is given its name back: `path`'s folders are made again, `reopen()` opens the
// new file there (the caller's flags and locks), every byte of the old one is copied into it,
// and the old descriptor is closed. Returns the new descriptor, or `fd` itself when the file
// still has a name. Throws std::runtime_error naming `path` when it cannot be made again, or when
// another file has taken the name since (it is neither appended to nor replaced); the old
// descriptor is then kept, and a copy cut short is removed.
int file_relink_if_removed(int fd, const std::string& path, const std::function<int()>& reopen);

// Writes the parts (pointer, size) to `path` atomically: a temporary file beside it (`tmp`, by
// default PATH.tmp.PID; made by open_fresh), written in full, fsynced and renamed over it.
// Throws std::runtime_error naming the file and the failure.
void file_write_atomic(const std::string& path,
                       const std::vector<std::pair<const char*, size_t>>& parts,
                       const std::string& tmp = "");

// `path` made absolute one component at a time: each prefix that exists is resolved (symlinks
// followed, as realpath); past the first one that does not, components are taken as written
// (they will be plain directories once created), with "." dropped and ".." the parent. So
// "missing/../data/x" is "$PWD/data/x", as the kernel will see it once "missing" exists. "" when
// the working directory cannot be read.
std::string path_resolve(const std::string& path);
// Whether path itself is a symbolic link (not followed).
bool path_is_symlink(const std::string& path);
// Whether the file at `path` is marked immutable or append-only (chattr +i / +a), so that it can
// be neither replaced nor removed; false where it is not, cannot be opened, or the file system
// keeps no such marks.
bool file_immutable(const std::string& path);

// Whether `path` (existing or not) lies inside the directory `dir` or is `dir` itself, after
// resolving symbolic links of the parts that exist.
bool path_inside(const std::string& path, const std::string& dir);

// Renames the file at `path` (DIR/STEM.EXT) to the first DIR/STEM.N.EXT with nothing there (N from
// 1), keeping an earlier run's file beside the one about to replace it. Returns the new name, or
// "" when there was no file, no free name under N = 10000, or the rename failed.
std::string file_keep_numbered(const std::string& path);

// Bytes free for this user on the file system holding `path` (an existing path); -1 if unknown.
int64_t free_bytes(const std::string& path);

}  // namespace longnet
