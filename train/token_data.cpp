// Byte-token files (see token_data.h). The build streams files straight to
// disk (a corpus can be far larger than memory) and decides the split from path hashes alone,
// so the same directory always gives the same file.
#include "longnet/train/token_data.h"

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/parallel/mpi_bootstrap.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "longnet/train/token_header.h"

namespace longnet {
namespace {

constexpr uint32_t kHeaderBytes = kTokenHeaderBytes;
constexpr uint64_t kMaxFileBytes = 16u << 20;
constexpr size_t kSniffBytes = 1 << 16;  // read at a time

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a, mixed: stable across runs, machines and compilers (std::hash is not).
uint64_t path_hash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return splitmix64(h);
}

std::string mb(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MB", bytes / 1e6);
  return buf;
}
std::string millions(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
  return buf;
}

struct Candidate {
  std::string path;
  std::string rel;
  double u = 0;  // path hash in [0, 1): below val_fraction means validation
  bool val = false;
};

enum class Sniff { kText, kBinary, kLarge, kOther };

Sniff sniff(const std::string& p, uint64_t size) {
  if (size > kMaxFileBytes) return Sniff::kLarge;
  if (size == 0) return Sniff::kOther;
  // (a file that became a FIFO or a device since the walk is not opened for reading: that could
  // block, or never end)
  int fd = -1;
  try {
    fd = file_open_regular(p, "data build source", &size);
  } catch (const std::exception&) {
    return Sniff::kOther;
  }
  // The whole file (at most kMaxFileBytes): text holds no NUL byte anywhere, also not after a
  // text head (as data build --source judges it).
  std::vector<char> buf(kSniffBytes);
  uint64_t total = 0;
  Sniff out = Sniff::kOther;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    total += uint64_t(n);
    if (total > kMaxFileBytes) {
      out = Sniff::kLarge;
      break;
    }
    out = Sniff::kText;
    if (std::memchr(buf.data(), 0, static_cast<size_t>(n))) {
      out = Sniff::kBinary;
      break;
    }
  }
  ::close(fd);
  return out;
}

// Regular files under `dir` with their paths relative to the walk's root. Links are skipped,
// never followed (no loops, no file taken twice). POSIX calls rather than std::filesystem:
// libtorch.so exports std::filesystem symbols of another build that the dynamic linker may
// bind to instead of libstdc++'s (they crash).
struct FileEntry {
  std::string path, rel;
  uint64_t size;
  dev_t dev;
  ino_t ino;
};
void walk(const std::string& dir, const std::string& rel, std::vector<FileEntry>& out,
          int64_t& unreadable) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    ++unreadable;
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  ::closedir(d);
  for (const auto& name : names) {
    const std::string path = dir + "/" + name, r = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      ++unreadable;
    } else if (S_ISDIR(st.st_mode)) {
      walk(path, r, out, unreadable);
    } else if (S_ISREG(st.st_mode)) {
      out.push_back({path, r, static_cast<uint64_t>(st.st_size), st.st_dev, st.st_ino});
    }
  }
}

// OUT.tmp created (or a leftover taken over: emptied), exclusively locked for this build, and
// never a link: a leftover link or hard link is removed, not written through. A second build of
// the same output finds the lock and is refused; on a file system without locks the build goes
// on unlocked.
int tmp_open_locked(const std::string& tmp, const std::string& out) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ELOOP) {  // a symbolic link there
      ::unlink(tmp.c_str());
      continue;
    }
    if (fd < 0)
      throw std::runtime_error("data build: cannot create '" + tmp + "': " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
      ::close(fd);
      throw std::runtime_error("data build: another build is writing '" + out +
                               "' now (its temporary file '" + tmp +
                               "' is locked); wait for it to finish, or give another output path");
    }
    // The name may have moved on while it was opened (the previous holder renamed it to the
    // output, or removed it): take the file the name holds now. A hard link is another file's.
    struct stat held, named;
    if (::fstat(fd, &held) == 0 && ::lstat(tmp.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino && S_ISREG(held.st_mode)) {
      if (held.st_nlink == 1 && ::ftruncate(fd, 0) == 0) return fd;
      if (held.st_nlink > 1) ::unlink(tmp.c_str());
    }
    ::close(fd);
  }
  throw std::runtime_error("data build: cannot take '" + tmp +
                           "' for this build (it keeps changing: is another job writing it?)");
}

}  // namespace

// ---- building --------------------------------------------------------------------------------

DataBuildSummary data_build(const std::string& src_dir, const std::string& out_path,
                            double val_fraction) {
  if (!(val_fraction >= 0 && val_fraction < 1))
    throw std::invalid_argument("data build: --val-fraction " + std::to_string(val_fraction) +
                                " must be in [0, 1) (e.g. 0.005)");
  struct stat st;
  if (::stat(src_dir.c_str(), &st) != 0)
    throw std::runtime_error("data build: source '" + src_dir + "' does not exist");
  if (!S_ISDIR(st.st_mode))
    throw std::runtime_error("data build: source '" + src_dir +
                             "' is not a directory; give a directory of text or code");

  // The token file never replaces a source or a file that is not a token file.
  if (path_inside(out_path, src_dir))
    throw std::invalid_argument("data build: the output '" + out_path + "' is inside the source '" +
                                src_dir + "'; write it elsewhere (e.g. data/NAME.tokens)");
  const PathKind out_kind = path_kind(out_path);
  if (!out_path.empty() && out_path.back() == '/')
    throw std::invalid_argument("data build: the output '" + out_path +
                                "' names a directory (it ends in '/'); give a file path "
                                "(NAME.tokens)");
  if (out_kind == PathKind::kDirectory || out_kind == PathKind::kOther)
    throw std::invalid_argument("data build: the output '" + out_path + "' is " +
                                path_kind_text(out_path) + "; give a file path (NAME.tokens)");
  if (out_kind == PathKind::kFile) {
    unsigned char head[8] = {};
    const int fd = file_open_regular(out_path, "data build output", nullptr);
    const ssize_t n = ::pread(fd, head, sizeof(head), 0);
    ::close(fd);
    if (n < 0 || !token_file_magic(head, static_cast<size_t>(n)))
      throw std::invalid_argument("data build: the output '" + out_path +
                                  "' exists and is not a longnet token file; it is not replaced. "
                                  "Give a new path, or remove the file");
  }

  // The output's directory and its temporary file, locked before any reading: a second build
  // to the same output is refused at once, not after packing (each would replace the other's
  // file under its name).
  const auto slash = out_path.rfind('/');
  if (slash != std::string::npos && slash > 0 && !make_dirs(out_path.substr(0, slash)))
    throw std::runtime_error("data build: cannot create the directory of '" + out_path +
                             "': " + std::strerror(errno));
  const std::string tmp = out_path + ".tmp";
  const int fd = tmp_open_locked(tmp, out_path);
  const TempFileOnSignal on_signal(tmp);

  DataBuildSummary sum;
  std::vector<Candidate> files;
  std::vector<FileEntry> entries;
  // Any failure from here on (an error, memory) removes the temporary file; the name goes while
  // the lock is held: a build waiting for it never takes this one's file.
  struct TmpGuard {
    const std::string& tmp;
    int fd;
    bool armed = true;
    ~TmpGuard() {
      if (!armed) return;
      ::unlink(tmp.c_str());
      ::close(fd);
    }
  } guard{tmp, fd};
  auto fail = [&](const std::string& what) { throw std::runtime_error("data build: " + what); };
  walk(src_dir, "", entries, sum.other_skipped);
  // Directory order is unspecified: in path order the output is a function of the contents. A
  // file with several names (hard links) is read once, under its first name in that order:
  // twice, one text could land in both splits.
  std::sort(entries.begin(), entries.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.rel < b.rel; });
  {
    std::set<std::pair<dev_t, ino_t>> seen;
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](const FileEntry& e) {
                                   return !seen.insert({e.dev, e.ino}).second;
                                 }),
                  entries.end());
  }
  int64_t document_files =
      0;  // .jsonl, .gz, .zst: files of documents, which this build does not read as such
  for (auto& e : entries) {
    for (const char* ext : {".jsonl", ".gz", ".zst"})
      document_files += ends_with_nocase(e.rel, ext);
    switch (sniff(e.path, e.size)) {
      case Sniff::kBinary:
        ++sum.binary_files;
        continue;
      case Sniff::kLarge:
        ++sum.large_files;
        continue;
      case Sniff::kOther:
        ++sum.other_skipped;
        continue;
      case Sniff::kText:
        break;
    }
    Candidate c;
    c.path = std::move(e.path);
    c.rel = std::move(e.rel);
    c.u = static_cast<double>(path_hash(c.rel) >> 11) * 0x1.0p-53;
    c.val = c.u < val_fraction;
    files.push_back(std::move(c));
  }
  if (files.empty())
    fail("no text files under '" + src_dir + "' (" + std::to_string(sum.binary_files) +
         " binary, " + std::to_string(sum.large_files) + " larger than 16 MiB, " +
         std::to_string(sum.other_skipped) +
         " empty or unreadable); give a directory of text or code");
  if (document_files > 0)
    log_warning("data build: " + std::to_string(document_files) + " file(s) under '" + src_dir +
                "' are .jsonl, .gz or .zst; this byte-level build packs every file as it is (a "
                ".jsonl's JSON syntax included, a compressed file skipped as binary). To read "
                "them as documents, set data.tokenizer (e.g. bytes:eot) or use `longnet data "
                "build --tokenizer`");
  // At least one file of each split when there are two (a --val-fraction of 0 asks for none).
  if (files.size() >= 2 && val_fraction > 0) {
    auto by_u = [](const Candidate& a, const Candidate& b) { return a.u < b.u; };
    if (std::none_of(files.begin(), files.end(), [](const Candidate& c) { return c.val; }))
      std::min_element(files.begin(), files.end(), by_u)->val = true;
    if (std::all_of(files.begin(), files.end(), [](const Candidate& c) { return c.val; }))
      std::max_element(files.begin(), files.end(), by_u)->val = false;
  }

  auto put = [&](const char* p, size_t n) {
    if (!fd_write_all(fd, p, n))
      fail("writing '" + tmp + "' failed: " + std::strerror(errno) + " (disk full?)");
  };
  unsigned char header[kHeaderBytes] = {};
  put(reinterpret_cast<const char*>(header), kHeaderBytes);
  std::string buf;
  for (bool val : {false, true}) {
    int64_t& tokens = val ? sum.val_tokens : sum.train_tokens;
    int64_t& count = val ? sum.val_files : sum.train_files;
    for (const auto& c : files) {
      if (c.val != val) continue;
      // (bounded, and never through a FIFO or a device: the file may have been replaced by one
      // since it was sniffed)
      try {
        buf = file_read_bounded(c.path, "data build source", kMaxFileBytes);
      } catch (const std::runtime_error& e) {
        fail("cannot read '" + printable_text(c.path) +
             "' (it changed or vanished during the build: " + e.what() + "); run again");
      }
      if (count > 0) {
        put("\n", 1);
        ++tokens;
      }
      put(buf.data(), buf.size());
      tokens += static_cast<int64_t>(buf.size());
      ++count;
    }
  }
  token_header_write(header, static_cast<uint64_t>(sum.train_tokens),
                     static_cast<uint64_t>(sum.val_tokens));
  if (::lseek(fd, 0, SEEK_SET) != 0)
    fail("seeking in '" + tmp + "' failed: " + std::strerror(errno));
  put(reinterpret_cast<const char*>(header), kHeaderBytes);
  if (::fsync(fd) != 0) fail("syncing '" + tmp + "' failed: " + std::strerror(errno));
  // Renamed while still locked: another build can take the name only once it is free.
  if (::rename(tmp.c_str(), out_path.c_str()) != 0)
    fail("cannot rename '" + tmp + "' to '" + out_path + "': " + std::strerror(errno));
  guard.armed = false;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(out_path.c_str());
    throw std::runtime_error("data build: closing '" + out_path + "' failed: " +
                             std::strerror(err) + "; it was removed, run the build again");
  }
  sum.text_files = static_cast<int64_t>(files.size());
  std::ostringstream line;
  line << "data build: " << src_dir << " -> " << out_path << ": " << sum.text_files
       << " text files, " << mb(sum.train_tokens + sum.val_tokens) << " (skipped "
       << sum.binary_files << " binary, " << sum.large_files << " over 16 MiB, "
       << sum.other_skipped << " empty or unreadable); train " << millions(sum.train_tokens)
       << " tokens (" << sum.train_files << " files), validation " << millions(sum.val_tokens)
       << " tokens (" << sum.val_files << " files)";
  log_info(line.str());
  return sum;
}

}  // namespace longnet
