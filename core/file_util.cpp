// POSIX file helpers (see file_util.h).
#include "longnet/core/file_util.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace longnet {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

std::string parent_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Creates and removes a file in dir: the one sure test of "can write here" (access() says yes
// to root on a read-only file system).
void probe_writable(const std::string& dir, const std::string& what, const std::string& path) {
  const std::string probe = dir + "/.longnet-write-test." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error(what + " '" + path + "': cannot write in '" + dir +
                             "': " + errno_text() + "; use a writable place");
  ::close(fd);
  ::unlink(probe.c_str());
}

// Whether the existing file `path` is empty or starts as `content` says (output_file_prepare).
bool existing_content_is(const std::string& path, OutputContent content) {
  const int fd = file_open_regular(path, "output file", nullptr);  // (an unreadable one says why)
  char head[512];
  ssize_t n;
  while ((n = ::read(fd, head, sizeof(head))) < 0 && errno == EINTR) {
  }
  ::close(fd);
  if (n < 0) return false;
  const std::string h(head, static_cast<size_t>(n));
  if (content == OutputContent::kImage)
    return h.empty() || h.rfind("\x89PNG\r\n\x1a\n", 0) == 0 || h.rfind("%PDF", 0) == 0 ||
           h.find("<svg") != std::string::npos;  // (after an XML declaration, a DOCTYPE, ...)
  // The JSON kinds: white space, then what longnet's writer puts first (JSON text without the
  // white space between tokens, so that either spelling is recognised).
  std::string t;
  for (char c : h)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') t += c;
  if (t.empty()) return n < static_cast<ssize_t>(sizeof(head));  // empty or only white space
  switch (content) {
    case OutputContent::kResults:
      return t.rfind("{\"command\":\"longnet", 0) == 0;
    case OutputContent::kMetrics: {
      // (also a first line cut short within its first bytes: the writer drops such a line)
      const std::string head = "{\"step\":";
      return t.rfind(head, 0) == 0 || (h.find('\n') == std::string::npos && head.rfind(t, 0) == 0);
    }
    case OutputContent::kTrace:
      return t.rfind("{\"schemaVersion\":", 0) == 0 || t.rfind("{\"traceEvents\":", 0) == 0;
    default:
      return true;
  }
}

}  // namespace

namespace {
std::mutex g_made_dirs_mutex;
std::vector<std::string> g_made_dirs;  // made by make_dirs, in order
}  // namespace

bool make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    const std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) == 0) {
      const std::lock_guard<std::mutex> lock(g_made_dirs_mutex);
      g_made_dirs.push_back(prefix);
    } else if (errno != EEXIST) {
      return false;
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode)) return errno = ENOTDIR, false;
  return true;
}

bool path_is_symlink(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

bool file_immutable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  const bool marked =
      ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL)) != 0;
  ::close(fd);
  return marked;
}

bool dir_made_here(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const std::lock_guard<std::mutex> lock(g_made_dirs_mutex);
  return std::find(g_made_dirs.begin(), g_made_dirs.end(), d) != g_made_dirs.end();
}

void made_dirs_remove_empty() {
  const std::lock_guard<std::mutex> lock(g_made_dirs_mutex);
  for (auto it = g_made_dirs.rbegin(); it != g_made_dirs.rend(); ++it) ::rmdir(it->c_str());
  g_made_dirs.clear();
}

bool make_parent_dirs(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  return make_dirs(path.substr(0, slash));
}

PathKind path_kind(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PathKind::kMissing;
  if (S_ISREG(st.st_mode)) return PathKind::kFile;
  if (S_ISDIR(st.st_mode)) return PathKind::kDirectory;
  return PathKind::kOther;
}

std::string path_kind_text(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      return e == ELOOP ? "a symbolic link loop" : "a symbolic link to nothing (dangling)";
    return "missing";
  }
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

int file_open_regular(const std::string& path, const std::string& what, uint64_t* size) {
  const std::string who = what + " '" + path + "'";
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer; the fstat below refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) throw std::runtime_error(who + " does not exist");
    throw std::runtime_error(who + " cannot be opened: " + errno_text());
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(who + " is " + path_kind_text(path) + ", not a regular file");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (size) *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

std::string file_read_bounded(const std::string& path, const std::string& what,
                              uint64_t max_bytes) {
  uint64_t size = 0;
  const int fd = file_open_regular(path, what, &size);
  const std::string who = what + " '" + path + "'";
  if (size > max_bytes) {
    ::close(fd);
    throw std::runtime_error(who + " is " + std::to_string(size) + " bytes; at most " +
                             std::to_string(max_bytes) + " are read (is it the right file?)");
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string err = errno_text();
      ::close(fd);
      throw std::runtime_error(who + " cannot be read: " + err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {  // it grew while being read
      ::close(fd);
      throw std::runtime_error(who + " grew past " + std::to_string(max_bytes) +
                               " bytes while being read");
    }
  }
  ::close(fd);
  return out;
}

bool is_checkpoint_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
    name.resize(name.size() - 4);
  if (name.size() < 11 || name.compare(0, 5, "step_") != 0 ||
      name.compare(name.size() - 5, 5, ".ckpt") != 0)
    return false;
  const std::string digits = name.substr(5, name.size() - 10);
  return digits.find_first_not_of("0123456789") == std::string::npos;
}

void output_file_prepare(const std::string& path, const std::string& what, OutputContent content) {
  const std::string who = what + " '" + path + "'";
  if (path.empty()) throw std::runtime_error(what + ": the path is empty");
  // A path that can only name a directory ("out/", "out/.", "out/..") is refused before its
  // directory would be made: the write at the end would fail after all the work.
  const std::string last =
      path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  if (last.empty() || last == "." || last == "..")
    throw std::runtime_error(who +
                             " names a directory, not a file; give a file path (a file name "
                             "after the last '/')");
  const PathKind kind = path_kind(path);
  if (kind == PathKind::kDirectory || kind == PathKind::kOther)
    throw std::runtime_error(who + " is " + path_kind_text(path) +
                             ", not a regular file; give a file path");
  // The command's own standard output or error, redirected to the file (`> out.json`): what it
  // prints would be mixed into the file, or the file found not to hold its kind at the end.
  if (kind == PathKind::kFile) {
    struct stat st, fd_st;
    for (int fd : {1, 2})
      if (::stat(path.c_str(), &st) == 0 && ::fstat(fd, &fd_st) == 0 && S_ISREG(fd_st.st_mode) &&
          st.st_dev == fd_st.st_dev && st.st_ino == fd_st.st_ino)
        throw std::runtime_error(who + " is this command's standard " +
                                 (fd == 1 ? "output" : "error") +
                                 " (redirected there), which it prints to: give the file another "
                                 "path than the redirect");
  }
  if (is_checkpoint_name(path))  // (a new file of that name would stop a resume there too)
    throw std::runtime_error(who +
                             (kind == PathKind::kFile
                                  ? std::string(" is a training checkpoint (step_*.ckpt); "
                                                "nothing else is written over one")
                                  : std::string(" is named as a training checkpoint "
                                                "(step_*.ckpt), which only training "
                                                "writes")) +
                             ": give another path");
  if (kind == PathKind::kFile && content != OutputContent::kAny) {
    const std::string kind_text = content == OutputContent::kResults   ? "longnet's results JSON"
                                  : content == OutputContent::kMetrics ? "longnet's metrics lines"
                                  : content == OutputContent::kTrace   ? "a profiler trace"
                                                                       : "a PNG, SVG or PDF";
    if (!existing_content_is(path, content))
      throw std::runtime_error(who + " exists and does not hold " + kind_text +
                               " (a model, dataset, config or other file?); longnet replaces "
                               "only a file of the kind it writes there: give a new path");
  }
  const std::string dir = parent_of(path);
  if (!make_dirs(dir))
    throw std::runtime_error(who + ": its directory '" + dir +
                             "' cannot be created: " + errno_text());
  probe_writable(dir, what, path);
  if (kind == PathKind::kFile && ::access(path.c_str(), W_OK) != 0)
    throw std::runtime_error(who + " exists and cannot be written: " + errno_text());
}

void output_dir_prepare(const std::string& dir, const std::string& what) {
  const std::string who = what + " '" + dir + "'";
  if (dir.empty()) throw std::runtime_error(what + ": the path is empty");
  if (is_checkpoint_name(dir))
    throw std::runtime_error(who +
                             " is named as a training checkpoint (step_*.ckpt); a directory "
                             "of that name would stop training resuming beside it: give "
                             "another path");
  const PathKind kind = path_kind(dir);
  if (kind == PathKind::kFile || kind == PathKind::kOther)
    throw std::runtime_error(who + " is " + path_kind_text(dir) + ", not a directory");
  if (!make_dirs(dir)) throw std::runtime_error(who + " cannot be created: " + errno_text());
  probe_writable(dir, what, dir);
}

std::string path_resolve(const std::string& path) {
  char buf[PATH_MAX];
  std::string at;
  if (path.empty() || path[0] != '/') {
    if (!::getcwd(buf, sizeof(buf))) return "";
    at = buf;
    if (at == "/") at.clear();  // the root is "" below
  }
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    const std::string c = path.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      const size_t slash = at.find_last_of('/');
      at = slash == std::string::npos || slash == 0 ? "" : at.substr(0, slash);
      continue;
    }
    at += "/" + c;
    if (::realpath(at.c_str(), buf)) at = buf;
    if (at == "/") at.clear();
  }
  return at.empty() ? "/" : at;
}

namespace {
// Whether `path` (existing or not) names the existing file `file` once its missing directories
// exist.
bool path_is(const std::string& path, const std::string& file) {
  char buf[PATH_MAX];
  return ::realpath(file.c_str(), buf) && path_resolve(path) == buf;
}
}  // namespace

void output_not_input(const std::string& path, const std::vector<std::string>& inputs,
                      const std::string& what) {
  struct stat out;
  const bool out_exists = ::stat(path.c_str(), &out) == 0;
  for (const auto& in : inputs) {
    if (in.empty()) continue;
    struct stat st;
    const bool dir = path_kind(in) == PathKind::kDirectory;
    // The same file now, or once the missing directories of `path` exist ("new/../data.tokens").
    const bool same = (out_exists && ::stat(in.c_str(), &st) == 0 && st.st_dev == out.st_dev &&
                       st.st_ino == out.st_ino) ||
                      (!dir && path_is(path, in));
    const bool inside = !same && dir && path_inside(path, in);
    if (same || inside)
      throw std::runtime_error(what + " '" + path + "' " + (inside ? "lies inside" : "is") +
                               " an input of this job ('" + in +
                               "'), which it would write over: give another path");
  }
}

std::string file_keep_numbered(const std::string& path) {
  if (path_kind(path) != PathKind::kFile) return "";
  const size_t slash = path.rfind('/'), dot = path.rfind('.');
  const bool has_ext =
      dot != std::string::npos && dot > 0 && (slash == std::string::npos || dot > slash + 1);
  const std::string stem = has_ext ? path.substr(0, dot) : path;
  const std::string ext = has_ext ? path.substr(dot) : "";
  for (int n = 1; n < 10000; ++n) {
    const std::string keep = stem + "." + std::to_string(n) + ext;
    if (path_kind(keep) != PathKind::kMissing) continue;
    return ::rename(path.c_str(), keep.c_str()) == 0 ? keep : "";
  }
  return "";
}

bool path_inside(const std::string& path, const std::string& dir) {
  char buf[PATH_MAX];
  if (!::realpath(dir.c_str(), buf)) return false;
  const std::string d = buf;
  const std::string p = path_resolve(path);
  if (p.empty()) return false;
  return p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 &&
                    (d == "/" || p[d.size()] == '/'));
}

int64_t free_bytes(const std::string& path) {
  struct statvfs s;
  if (::statvfs(path.c_str(), &s) != 0) return -1;
  return static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize);
}

namespace {
// The registered paths: a slot is free (0), being filled (1) or holds a path (2).
constexpr int kTempSlots = 256;
std::atomic<int> g_temp_state[kTempSlots];
char g_temp_path[kTempSlots][PATH_MAX];

std::atomic<bool> g_signal_note{true};  // temp_files_on_signal says which signal ended it

void temp_files_unlink() {
  for (int i = 0; i < kTempSlots; ++i)
    if (g_temp_state[i].load() == 2) ::unlink(g_temp_path[i]);  // (async-signal-safe)
}

extern "C" void temp_files_on_signal(int sig) {
  temp_files_unlink();
  // Said, so that a stop (during a long start-up, say) is not a silent end; by one process of
  // a job, and not while an error is being reported (mpirun then ends the others by SIGTERM).
  const char* msg = sig == SIGINT    ? "\nlongnet: stopped by SIGINT\n"
                    : sig == SIGTERM ? "\nlongnet: stopped by SIGTERM\n"
                    : sig == SIGUSR1 ? "\nlongnet: stopped by SIGUSR1\n"
                                     : "\nlongnet: stopped by SIGHUP\n";
  if (g_signal_note.load()) (void)!::write(2, msg, std::strlen(msg));
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace

TempFileOnSignal::TempFileOnSignal(const std::string& path) {
  if (path.size() >= PATH_MAX) return;
  for (int i = 0; i < kTempSlots; ++i) {
    int free = 0;
    if (g_temp_state[i].compare_exchange_strong(free, 1)) {
      std::memcpy(g_temp_path[i], path.c_str(), path.size() + 1);
      g_temp_state[i].store(2);
      slot_ = i;
      return;
    }
  }
}

TempFileOnSignal::~TempFileOnSignal() {
  if (slot_ >= 0) g_temp_state[slot_].store(0);
}

void signal_note_off() {
  g_signal_note.store(false);
}

void temp_files_remove_on_signal() {
  // Under a launcher only rank 0 says it (every rank gets the signal).
  for (const char* rank : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const char* r = std::getenv(rank); r && std::string(r) != "0") g_signal_note.store(false);
  // (SIGUSR1 too: the README's way to stop a job through mpirun, which may come before a
  // command's own stop handlers, e.g. while train builds its dataset)
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;  // nohup
    std::signal(sig, temp_files_on_signal);
  }
}

namespace {
std::atomic<int> g_stop_signal{0};
std::atomic<int> g_first_stop_signal{0};     // the first one's number
std::atomic<int64_t> g_stop_signal_ns{0};    // CLOCK_MONOTONIC when the first one came
constexpr int64_t kSameStopNs = 1000000000;  // a second signal within 1 s is the same request
int64_t monotonic_ns() {                     // (clock_gettime is async-signal-safe)
  struct timespec t {};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec;
}
extern "C" void stop_on_signal(int sig) {
  // A second SIGINT or SIGTERM ends the process at once (Ctrl-C twice), without the checkpoint
  // the first one asked for; the files written so far are whole (atomic renames), and the
  // temporary file of one being written (TempFileOnSignal) is removed. The first signal again
  // within a second is the same request delivered twice (`timeout -s INT` signals the process
  // and then its group; under mpirun a terminal's Ctrl-C reaches a rank directly and through the
  // launcher), not a second Ctrl-C; another signal (launch/train.sh's SIGINT after its SIGUSR1)
  // is a second request at once.
  if (g_stop_signal.load() != 0 && (sig == SIGINT || sig == SIGTERM)) {
    if (sig == g_first_stop_signal.load() && monotonic_ns() - g_stop_signal_ns.load() < kSameStopNs)
      return;
    static const char kMsg[] =
        "\nlongnet: a second stop signal: exiting now (nothing more is written)\n";
    (void)!::write(2, kMsg, sizeof(kMsg) - 1);
    temp_files_unlink();
    ::_exit(128 + sig);
  }
  if (g_stop_signal.load() == 0) {
    g_stop_signal_ns.store(monotonic_ns());
    g_first_stop_signal.store(sig);
  }
  g_stop_signal.store(sig);
}
}  // namespace

void stop_signals_catch() {
  g_stop_signal.store(0);
  g_first_stop_signal.store(0);
  struct sigaction act {};
  act.sa_handler = stop_on_signal;
  act.sa_flags = SA_RESTART;  // as std::signal: interrupted reads and writes go on
  sigemptyset(&act.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGHUP}) {
    // (a background job of a script ignores SIGINT, yet `kill -INT` should stop it cleanly;
    // a hang-up stays ignored under nohup)
    struct sigaction old {};
    if (sig == SIGHUP && (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN))
      continue;
    ::sigaction(sig, &act, nullptr);
  }
}

int stop_signal_caught() {
  return g_stop_signal.load();
}

int open_fresh(const std::string& path) {
  ::unlink(path.c_str());  // (fails harmlessly when there is none; a directory makes open fail)
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

int file_relink_if_removed(int fd, const std::string& path, const std::function<int()>& reopen) {
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_nlink > 0) return fd;
  const auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0 && !make_dirs(path.substr(0, slash)))
    throw std::runtime_error("'" + path + "' was removed while in use, and its folder cannot be " +
                             "made again: " + std::strerror(errno));
  // (its name is free: a file that took it since is another's, neither appended to nor replaced)
  if (::access(path.c_str(), F_OK) == 0)
    throw std::runtime_error("'" + path + "' was removed while in use, and another file holds " +
                             "its name now: this job's lines are not written there");
  const int fresh = reopen();
  if (fresh < 0)
    throw std::runtime_error("'" + path + "' was removed while in use, and cannot be made again: " +
                             std::strerror(errno));
  std::vector<char> buf(1 << 20);
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (n > 0 && !fd_write_all(fresh, buf.data(), size_t(n)))) {
      const std::string why = std::strerror(errno);
      ::close(fresh);
      ::unlink(path.c_str());  // (else a part, and the whole again after it at the next try)
      throw std::runtime_error("'" + path + "' was removed while in use; copying it to its " +
                               "name again failed: " + why);
    }
    if (n == 0) break;
    at += n;
  }
  ::close(fd);
  return fresh;
}

bool fd_write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return false;
    if (w == 0) {
      errno = ENOSPC;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void file_write_atomic(const std::string& path,
                       const std::vector<std::pair<const char*, size_t>>& parts,
                       const std::string& tmp_name) {
  const std::string tmp = tmp_name.empty() ? path + ".tmp." + std::to_string(::getpid()) : tmp_name;
  const TempFileOnSignal on_signal(tmp);
  const int fd = open_fresh(tmp);
  if (fd < 0) throw std::runtime_error("'" + tmp + "': cannot create: " + std::strerror(errno));
  auto fail = [&](const char* what) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error("'" + tmp + "': " + what + " failed: " + err);
  };
  for (auto [p, n] : parts)
    if (!fd_write_all(fd, p, n)) fail("write");
  if (::fsync(fd) != 0) fail("fsync");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error("'" + path + "': rename failed: " + err);
  }
}

}  // namespace longnet
