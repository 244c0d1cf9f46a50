// Safe checkpoint files (see checkpoint_files.h). torch's zip reader does not check its CRCs,
// and a dict re-pickled after loading is not byte-identical to the file, so the integrity
// record is a CRC-32 over the decoded contents, computed the same way on write and on read.
#include "longnet/train/checkpoint_files.h"

#include "longnet/core/file_util.h"
#include "longnet/core/text.h"
#include "longnet/core/zip_layout.h"

#include <ATen/ATen.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <tuple>

#include "longnet/core/errors.h"
#include "longnet/core/parameter_io.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/train/crc32.h"
#include "longnet/train/fault_injection.h"

namespace longnet {
namespace {

constexpr const char* kFormatKey = "_longnet_format";
constexpr const char* kCrcKey = "_longnet_crc32";
constexpr const char* kFormat = "longnet-checkpoint-1";

// CRC-32 over a stream of tagged values (train/crc32.h).
class Crc32 {
 public:
  void update(const void* data, size_t n) { crc_ = crc32_update(crc_, data, n); }
  void tag(char ch) { update(&ch, 1); }
  void u64(uint64_t v) { update(&v, sizeof(v)); }  // little-endian hosts (x86-64, aarch64)
  uint32_t value() const { return crc_; }

 private:
  uint32_t crc_ = 0;
};

// Feeds one value's contents into the CRC: a type tag, then its data. Lists of every element
// type hash alike, since unpickling may change the static list type but not the values.
void hash_value(Crc32& crc, const c10::IValue& v, const std::string& where) {
  if (v.isNone()) {
    crc.tag('N');
  } else if (v.isBool()) {
    crc.tag('B');
    crc.tag(v.toBool() ? 1 : 0);
  } else if (v.isInt()) {
    crc.tag('I');
    crc.u64(static_cast<uint64_t>(v.toInt()));
  } else if (v.isDouble()) {
    crc.tag('D');
    double d = v.toDouble();
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    crc.u64(bits);
  } else if (v.isString()) {
    crc.tag('S');
    const std::string& s = v.toStringRef();
    crc.u64(s.size());
    crc.update(s.data(), s.size());
  } else if (v.isTensor()) {
    at::Tensor t = v.toTensor().detach().cpu().contiguous();
    crc.tag('T');
    crc.u64(static_cast<uint64_t>(t.scalar_type()));
    crc.u64(static_cast<uint64_t>(t.dim()));
    for (int64_t s : t.sizes()) crc.u64(static_cast<uint64_t>(s));
    crc.u64(t.nbytes());
    if (t.nbytes()) crc.update(t.data_ptr(), t.nbytes());
  } else if (v.isList()) {
    auto list = v.toList();
    crc.tag('L');
    crc.u64(list.size());
    for (size_t i = 0; i < list.size(); ++i)
      hash_value(crc, list.get(i), where + "[" + std::to_string(i) + "]");
  } else if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    crc.tag('U');
    crc.u64(elems.size());
    for (size_t i = 0; i < elems.size(); ++i)
      hash_value(crc, elems[i], where + "[" + std::to_string(i) + "]");
  } else if (v.isGenericDict()) {
    auto dict = v.toGenericDict();
    crc.tag('M');
    crc.u64(dict.size());
    for (const auto& kv : dict) {
      hash_value(crc, kv.key(), where + " key");
      hash_value(crc, kv.value(),
                 where + "." + (kv.key().isString() ? kv.key().toStringRef() : std::string("?")));
    }
  } else {
    throw std::invalid_argument("checkpoint: entry '" + where + "' holds a " + v.tagKind() +
                                ", which checkpoints do not store (use tensors, numbers, "
                                "strings, bools, None, lists, tuples or dicts)");
  }
}

uint32_t state_crc(const c10::impl::GenericDict& d) {
  Crc32 crc;
  for (const auto& kv : d) {
    if (kv.key().isString() && kv.key().toStringRef() == kCrcKey) continue;
    hash_value(crc, kv.key(), "key");
    hash_value(crc, kv.value(), kv.key().isString() ? kv.key().toStringRef() : "?");
  }
  return crc.value();
}

// A copy with every tensor on the CPU, so that the file loads on any machine.
c10::IValue to_cpu(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor().detach().cpu();
  if (v.isGenericDict()) {
    auto in = v.toGenericDict();
    c10::impl::GenericDict out(in.keyType(), in.valueType());
    for (const auto& kv : in) out.insert(kv.key(), to_cpu(kv.value()));
    return out;
  }
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorVector()) out.push_back(t.detach().cpu());
    return out;
  }
  if (v.isList() && !v.isIntList() && !v.isDoubleList() && !v.isBoolList()) {
    auto in = v.toList();
    c10::impl::GenericList out(in.elementType());
    for (size_t i = 0; i < in.size(); ++i) out.push_back(to_cpu(in.get(i)));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> elems;
    for (const auto& e : v.toTupleRef().elements()) elems.push_back(to_cpu(e));
    return c10::ivalue::Tuple::create(std::move(elems));
  }
  return v;
}

std::string errno_text() {
  return std::strerror(errno);
}

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw std::runtime_error("checkpoint '" + path + "': write failed: " + errno_text());
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) throw std::runtime_error("checkpoint dir '" + dir + "': open: " + errno_text());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    throw std::runtime_error("checkpoint dir '" + dir + "': fsync: " + std::strerror(err));
}

// A torch.save file is a zip archive: it starts with a local header and ends with the
// end-of-central-directory record (22 bytes plus a comment of up to 64 KiB). A file cut short
// by a crash lacks the end record.
std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

const std::regex kCheckpointName(R"(step_([0-9]+)\.ckpt)");

// Directory work uses POSIX calls (see core/file_util.h).

// The names in a directory ("." and ".." left out); empty when it cannot be read.
std::vector<std::string> dir_names(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  return names;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Checkpoints known to verify in this process (written by it, or read back whole), by file
// identity, so that retention reads each older checkpoint once, not at every save.
struct FileId {
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns, ctime_ns;  // ctime: a change of permissions too
  bool operator<(const FileId& o) const {
    return std::tie(dev, ino, size, mtime_ns, ctime_ns) <
           std::tie(o.dev, o.ino, o.size, o.mtime_ns, o.ctime_ns);
  }
};

std::optional<FileId> file_id(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino, st.st_size,
                int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

std::mutex g_verified_mu;
// Each one's owner (nullopt: not asked yet, as after checkpoint_read).
std::map<FileId, std::optional<std::string>> g_verified;
std::map<FileId, std::string> g_failed;  // why each did not verify

void verified_remember(const std::string& path, const std::optional<std::string>& owner) {
  if (auto id = file_id(path)) {
    std::lock_guard<std::mutex> lock(g_verified_mu);
    g_verified[*id] = owner;
  }
}

// Whether the checkpoint at path reads back and verifies; *why says why not. *owner gets
// owner_of's verdict on it (read once per file, as the verification).
bool verified(const std::string& path, std::string* why, const CheckpointOwner& owner_of,
              std::string* owner) {
  auto id = file_id(path);
  if (!id) {
    *why = "checkpoint '" + path + "' cannot be read: " + errno_text();
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(g_verified_mu);
    auto v = g_verified.find(*id);
    if (v != g_verified.end() && (v->second || !owner_of)) {
      *owner = owner_of ? *v->second : "";
      return true;
    }
    auto f = g_failed.find(*id);
    if (f != g_failed.end()) {  // the same file as before: not read again at every save
      *why = f->second;
      return false;
    }
  }
  try {
    auto state = checkpoint_read(path);
    *owner = owner_of ? owner_of(state) : "";
  } catch (const std::exception& e) {
    *why = first_line(e.what());
    std::lock_guard<std::mutex> lock(g_verified_mu);
    g_failed[*id] = *why;
    return false;
  }
  verified_remember(path, *owner);
  return true;
}

}  // namespace

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step_%08lld.ckpt", static_cast<long long>(step));
  return join_path(dir, name);
}

std::vector<std::pair<int64_t, std::string>> checkpoint_list(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const std::string& name : dir_names(dir)) {
    std::smatch m;
    if (!std::regex_match(name, m, kCheckpointName)) continue;
    const std::string path = join_path(dir, name);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    try {
      out.emplace_back(std::stoll(m[1].str()), path);
    } catch (const std::out_of_range&) {  // a number too long for int64: not ours
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a > b; });
  return out;
}

std::vector<std::string> checkpoint_name_blockers(const std::string& dir) {
  static const std::regex kName(R"(step_[0-9]+\.ckpt(\.tmp)?)");
  std::vector<std::string> out;
  for (const std::string& name : dir_names(dir)) {
    if (!std::regex_match(name, kName)) continue;
    const std::string path = join_path(dir, name);
    if (path_kind(path) != PathKind::kFile) out.push_back(path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void checkpoint_write(const std::string& dir, int64_t step, const c10::impl::GenericDict& state,
                      int keep, const CheckpointOwner& owner_of) {
  if (keep < 1)
    throw std::invalid_argument("checkpoint_write: keep = " + std::to_string(keep) +
                                " must be >= 1");
  if (step < 0)
    throw std::invalid_argument("checkpoint_write: step = " + std::to_string(step) +
                                " must be >= 0");
  c10::impl::GenericDict out(c10::StringType::get(), c10::AnyType::get());
  for (const auto& kv : state) {
    if (!kv.key().isString())
      throw std::invalid_argument("checkpoint_write: keys must be strings, got a " +
                                  kv.key().tagKind());
    const std::string& k = kv.key().toStringRef();
    if (k.rfind("_longnet_", 0) == 0)
      throw std::invalid_argument("checkpoint_write: key '" + k +
                                  "' is reserved (the _longnet_ prefix is the file's own)");
    out.insert(k, to_cpu(kv.value()));
  }
  out.insert(kFormatKey, std::string(kFormat));
  out.insert(kCrcKey, static_cast<int64_t>(state_crc(out)));
  const std::vector<char> bytes = torch_save_bytes(out);  // loads with torch.load defaults

  if (!make_dirs(dir))
    throw std::runtime_error("checkpoint dir '" + dir + "' cannot be created: " + errno_text());
  const std::string path = checkpoint_path(dir, step), tmp = path + ".tmp";
  int fd = open_fresh(tmp);
  if (fd < 0) throw std::runtime_error("checkpoint '" + tmp + "': cannot create: " + errno_text());
  const TempFileOnSignal remove_if_killed(tmp);  // (a second stop signal mid-write)
  try {
    // Fault injection for tests: die half-way through the write, as a kill would.
    if (fault_injection().crash_in_checkpoint_step == step) {
      write_all(fd, bytes.data(), bytes.size() / 2, tmp);
      ::_exit(97);
    }
    write_all(fd, bytes.data(), bytes.size(), tmp);
    if (::fsync(fd) != 0)
      throw std::runtime_error("checkpoint '" + tmp + "': fsync: " + errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0)
    throw std::runtime_error("checkpoint '" + tmp + "': close: " + errno_text());
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("checkpoint '" + tmp + "': rename to '" + path +
                             "' failed: " + errno_text());
  fsync_dir(dir);

  const std::string owner = owner_of ? owner_of(state) : "";
  verified_remember(path, owner);

  // Leftovers of a crash mid-write are never complete (the directory's lock says no other job
  // is writing here): remove them.
  for (const std::string& name : dir_names(dir))
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0 &&
        is_checkpoint_name(name))  // step_N.ckpt.tmp only: other files are the user's
      ::unlink(join_path(dir, name).c_str());
  // Retention over the checkpoints that verify, newest first, by file: the names of one file
  // (hard links, links in the directory) count once and share its fate, so a link never
  // shields its target's deletion or leaves a dangling name, and is never a second copy. Every
  // name's file is taken before any is removed (a link listed after its target included).
  struct Name {
    std::string path;
    std::pair<dev_t, ino_t> file;
  };
  std::vector<Name> names;
  for (const auto& [s, p] : checkpoint_list(dir))
    if (auto id = file_id(p)) names.push_back({p, {id->dev, id->ino}});
  int kept = 1;                                       // the one just written
  std::map<std::pair<dev_t, ino_t>, bool> keep_file;  // decided: kept (or left) / deleted
  if (auto id = file_id(path)) keep_file[{id->dev, id->ino}] = true;
  for (const Name& n : names) {
    if (keep_file.count(n.file)) continue;  // another name of a file already decided
    keep_file[n.file] = true;               // (left as it is unless deleted below)
    const std::string& p = n.path;
    std::string why, its_owner;
    if (!verified(p, &why, owner_of, &its_owner)) {
      log_warning(why + "; not counted among the checkpoint.keep checkpoints, and left as it is");
      continue;
    }
    if (its_owner != owner) {
      // (an owner in parentheses is no model: the checkpoint's config could not be read)
      std::string differs = "it holds another model";
      const size_t a = its_owner.rfind(kOwnerRun), b = owner.rfind(kOwnerRun);
      if (its_owner.rfind('(', 0) == 0)
        differs = "its config cannot be read";
      else if (a != std::string::npos && b != std::string::npos &&
               its_owner.compare(0, a, owner, 0, b) == 0)
        differs = its_owner.substr(a + std::strlen(kOwnerRun));
      log_warning("checkpoint '" + p + "' is not this run's (" + differs +
                  "); not counted among the checkpoint.keep checkpoints, and left as it is");
      continue;
    }
    if (kept < keep) {
      ++kept;
      continue;
    }
    keep_file[n.file] = false;
  }
  // Every name of a file that goes (a link here goes with it; a file outside the directory that
  // a link points at is never touched).
  for (const Name& n : names)
    if (!keep_file.at(n.file) && ::unlink(n.path.c_str()) != 0)
      log_warning("could not delete old checkpoint '" + n.path + "': " + errno_text());
}

void checkpoint_temporary_promote(const std::string& dir, const std::string& resumed) {
  // The file itself, not a link to it (a link is only a name, removed as a leftover).
  const std::string tmp = ".tmp";
  const size_t slash = resumed.rfind('/');
  const std::string name = slash == std::string::npos ? resumed : resumed.substr(slash + 1);
  struct stat st;
  if (!is_checkpoint_name(name) || name.size() <= tmp.size() ||
      name.compare(name.size() - tmp.size(), tmp.size(), tmp) != 0 ||
      ::lstat(resumed.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return;
  const std::string parent = slash == std::string::npos ? "." : resumed.substr(0, slash + 1);
  if (path_resolve(parent) != path_resolve(dir)) return;  // not among dir's leftovers
  const std::string from = join_path(dir, name), to = from.substr(0, from.size() - tmp.size());
  if (path_kind(to) != PathKind::kMissing) {
    log_warning("resumed from " + resumed + ", a checkpoint under its temporary name beside " + to +
                ": this save removes it with the leftovers of interrupted writes");
    return;
  }
  if (::rename(from.c_str(), to.c_str()) != 0) {
    log_warning("resumed from " + resumed + ", a checkpoint under its temporary name: it cannot " +
                "be renamed to " + to + " (" + errno_text() +
                "), so this save removes it with the leftovers of interrupted writes");
    return;
  }
  fsync_dir(dir);
  log_info("checkpoint: " + resumed +
           ", resumed from, is a complete checkpoint left under its temporary name (a stop "
           "between its write and its rename); renamed to " +
           to + ", so that it is kept");
}

c10::impl::GenericDict checkpoint_read(const std::string& path) {
  const std::string who = "checkpoint '" + path + "'";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error(who + ": cannot open: " + errno_text());
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(who + ": not a regular file");
  if (st.st_size == 0) throw std::runtime_error(who + ": truncated (the file is empty)");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw std::runtime_error(who + ": cannot open: " + errno_text());
  // The zip signature first, so that a large file that is not a checkpoint is refused without
  // being read (or allocated for).
  static const char kZipMagic[4] = {'P', 'K', 3, 4};
  char head[4] = {0, 0, 0, 0};
  const ssize_t nh = ::pread(fd, head, sizeof(head), 0);
  if (nh < 0) {
    const std::string err = errno_text();
    ::close(fd);
    throw std::runtime_error(who + ": read failed: " + err);
  }
  if (nh > 0 && nh < 4 && std::memcmp(head, kZipMagic, size_t(nh)) == 0) {
    ::close(fd);
    throw std::runtime_error(who + ": truncated (" + std::to_string(nh) +
                             " bytes, the start of a zip archive)");
  }
  if (nh < 4 || std::memcmp(head, kZipMagic, 4) != 0) {
    ::close(fd);
    throw CheckpointKindError(who + ": not a checkpoint (not a torch.save zip archive)");
  }
  std::vector<char> bytes;
  try {
    bytes.resize(static_cast<size_t>(st.st_size));
  } catch (const std::bad_alloc&) {
    ::close(fd);
    throw CheckpointMemoryError(who + ": " + std::to_string(st.st_size) +
                                " bytes do not fit in this machine's memory");
  }
  {
    size_t got = 0;
    while (got < bytes.size()) {
      ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    const std::string err = errno_text();
    ::close(fd);
    if (got != bytes.size())
      throw std::runtime_error(who + ": read failed after " + std::to_string(got) + " of " +
                               std::to_string(bytes.size()) + " bytes: " + err);
  }
  const size_t end_record = zip_end_record(bytes);
  if (end_record == std::string::npos) {
    // The last end-record signature tells a file cut short inside the record (or with none left:
    // cut short, or its last bytes overwritten; a zip holds no length of its own to tell those
    // apart) from one with bytes after the record.
    static const std::string signature = {'P', 'K', '\x05', '\x06'};
    const size_t n = bytes.size();
    const auto from = bytes.end() - static_cast<std::ptrdiff_t>(std::min<size_t>(n, 65557));
    const auto it = std::find_end(from, bytes.end(), signature.begin(), signature.end());
    const size_t at = it == bytes.end() ? std::string::npos : size_t(it - bytes.begin());
    const bool appended =
        at != std::string::npos && at + 22 <= n &&
        at + 22 + (size_t(uint8_t(bytes[at + 20])) | size_t(uint8_t(bytes[at + 21])) << 8) < n;
    throw std::runtime_error(
        who + (appended ? ": corrupted (" + std::to_string(n) +
                              " bytes; its zip end record does not end the file: bytes were "
                              "appended after it, or the record is damaged)"
                        : ": truncated or damaged (" + std::to_string(n) +
                              " bytes and no complete zip end record at its end: it was cut "
                              "short, e.g. by a crash while writing, or its last bytes were "
                              "overwritten)"));
  }
  std::vector<ZipEntry> entries;
  const std::string layout = zip_layout_error(bytes, end_record, &entries);
  if (!layout.empty())
    throw std::runtime_error(who + ": corrupted (its zip layout is broken: " + layout + ")");
  // The pickle against the CRC-32 the archive records for it: damaged bytes there would reach
  // LibTorch's unpickler, whose internal assertions say nothing of a damaged file. (The tensors'
  // bytes are checked by the checkpoint's own CRC below.)
  bool pickle_intact = false;  // its bytes are the ones written (by the archive's CRC-32)
  for (const ZipEntry& e : entries) {
    const std::string suffix = "data.pkl";
    if (e.method != 0 || e.name.size() < suffix.size() ||
        e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const uint32_t got = crc32_update(0, bytes.data() + e.data, size_t(e.size));
    pickle_intact = got == e.crc;
    if (got != e.crc)
      throw std::runtime_error(who + ": corrupted (the CRC-32 of its " + e.name + ", " +
                               crc32_hex(got) + ", is not the " + crc32_hex(e.crc) +
                               " the archive records: damaged bytes)");
  }
  c10::IValue v;
  // Memory running out while a good file is unpickled is no damage: said as such.
  auto no_memory = [&](const std::string& why) {
    return CheckpointMemoryError(who + ": out of host memory while unpickling its " +
                                 std::to_string(bytes.size()) + " bytes (" + why +
                                 "; the file is not known to be damaged): reading it needs "
                                 "about twice its size free");
  };
  try {
    v = torch::pickle_load(bytes);
  } catch (const std::bad_alloc&) {
    throw no_memory("std::bad_alloc");
  } catch (const std::exception& e) {
    const std::string what = first_line(e.what());
    if (says_out_of_memory(what)) throw no_memory(what);
    // Python's torch.save writes records LibTorch's writer does not, and a pickle LibTorch cannot
    // read: a checkpoint loaded and saved again in Python is not damaged, only not ours.
    auto holds = [&](const std::string& record) {
      return std::search(bytes.begin(), bytes.end(), record.begin(), record.end()) != bytes.end();
    };
    if (holds("/.format_version") || holds("/.storage_alignment"))
      throw CheckpointKindError(
          who +
          ": written by Python's torch.save (e.g. a checkpoint loaded and saved again in Python), "
          "which LibTorch cannot read back; longnet reads the files `longnet train` writes: use "
          "the original checkpoint");
    // Bytes intact as written that LibTorch cannot read (a TorchScript file, another tool's
    // pickle): not damage.
    if (pickle_intact)
      throw CheckpointKindError(who + ": not a longnet checkpoint (its pickle, intact by the " +
                                "CRC-32 its archive records, is one LibTorch cannot read: " +
                                first_line(e.what()) + "; e.g. a TorchScript file)");
    throw std::runtime_error(who + ": corrupted (cannot be unpickled: " + first_line(e.what()) +
                             ")");
  }
  if (!v.isGenericDict())
    throw CheckpointKindError(who + ": not a longnet checkpoint (holds a " + v.tagKind() +
                              ", not a dict)");
  const std::string outside = tensors_outside_storage(v);
  if (!outside.empty())
    throw std::runtime_error(who + ": corrupted (" + outside +
                             "): its pickle was edited or damaged");
  auto d = v.toGenericDict();
  auto fmt = d.find(kFormatKey);
  if (fmt == d.end() || !fmt->value().isString())
    throw CheckpointKindError(who + ": not a longnet checkpoint (no " + std::string(kFormatKey) +
                              " entry)");
  if (fmt->value().toStringRef() != kFormat)
    throw std::runtime_error(who + ": format '" + fmt->value().toStringRef() +
                             "', this longnet reads '" + kFormat + "'");
  auto crc = d.find(kCrcKey);
  if (crc == d.end() || !crc->value().isInt())
    throw CheckpointKindError(who + ": not a longnet checkpoint (no integrity record " +
                              std::string(kCrcKey) + ")");
  const uint32_t stored = static_cast<uint32_t>(crc->value().toInt());
  uint32_t computed = 0;
  try {
    computed = state_crc(d);
  } catch (const std::exception& e) {
    throw std::runtime_error(who + ": corrupted (" + first_line(e.what()) + ")");
  }
  if (stored != computed) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "stored CRC-32 %08x, contents give %08x", stored, computed);
    throw std::runtime_error(who + ": corrupted (checksum mismatch: " + buf + ")");
  }
  c10::impl::GenericDict out(d.keyType(), d.valueType());
  for (const auto& kv : d) {
    const bool ours = kv.key().isString() &&
                      (kv.key().toStringRef() == kFormatKey || kv.key().toStringRef() == kCrcKey);
    if (!ours) out.insert(kv.key(), kv.value());
  }
  verified_remember(path, std::nullopt);
  return out;
}

std::optional<std::string> checkpoint_latest(const std::string& dir) {
  for (const auto& [step, path] : checkpoint_list(dir)) {
    try {
      checkpoint_read(path);
      return path;
    } catch (const CheckpointMemoryError&) {
      throw;  // (not damaged: an older one is no answer)
    } catch (const std::exception& e) {
      log_warning(std::string("skipping ") + e.what());
    }
  }
  return std::nullopt;
}

CheckpointDirLock::CheckpointDirLock(const std::string& dir, const std::string& key) : key_(key) {
  lock(dir);
}

void CheckpointDirLock::lock(const std::string& dir) {
  for (int attempt = 0; !acquire(dir, key_); ++attempt)
    if (attempt == 3)
      throw std::runtime_error(key_ + " '" + dir + "': its lock file '" +
                               join_path(dir, ".longnet.lock") +
                               "' keeps being replaced; is another job starting there?");
}

bool CheckpointDirLock::acquire(const std::string& dir, const std::string& key) {
  const std::string who = key + " '" + dir + "'";
  if (!make_dirs(dir)) throw std::runtime_error(who + " cannot be created: " + errno_text());
  const std::string path = join_path(dir, ".longnet.lock");
  dir_ = dir;
  path_ = path;
  dir_made_ = dir_made_here(dir);
  // Never through a symbolic link (the note below would be written into its target), never
  // blocking on a FIFO put there.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  if (fd_ < 0) {
    const int err = errno;
    struct stat lst;
    const bool exists = ::lstat(path.c_str(), &lst) == 0;
    if (exists && S_ISLNK(lst.st_mode))
      throw std::runtime_error(who + " cannot be used: its lock file '" + path +
                               "' is a symbolic link; remove it (longnet creates the file itself)");
    if (exists && err == EACCES)
      throw std::runtime_error(who + " cannot be used: its lock file '" + path +
                               "' exists and is not writable by this user (it belongs to uid " +
                               std::to_string(lst.st_uid) +
                               "); remove it if no job uses the directory, or give another " + key);
    throw std::runtime_error(who + " cannot be used: cannot create its lock file '" + path +
                             "': " + std::strerror(err) + "; give a writable " + key);
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(who + " cannot be used: its lock file '" + path +
                             "' is not a plain file of its own (a FIFO, a device, or a hard "
                             "link to another file); remove it (longnet creates the file itself)");
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  const bool locked = ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
  // A failed job removes the lock file of a directory it made (see the destructor): a lock
  // taken on the file it just unlinked is on nothing. Then the path names another file, or
  // none: taken again on what the path names now.
  if (locked) {
    struct stat now;
    if (::stat(path.c_str(), &now) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
  }
  if (!locked) {
    const int err = errno;
    char holder[256] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof(holder) - 1, 0);
    std::string who_holds = n > 0 ? std::string(holder, size_t(n)) : "another process";
    while (!who_holds.empty() && (who_holds.back() == '\n' || who_holds.back() == '\0'))
      who_holds.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw std::runtime_error(who + " is in use by another training job (" + who_holds +
                               "); two jobs writing one directory would destroy each other's "
                               "files. Stop that job, or give this one another " +
                               key);
    throw std::runtime_error(who + ": cannot lock '" + path + "': " + std::strerror(err));
  }
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const std::string since = utc_time();
  const std::string me = "host " + std::string(host) + ", pid " + std::to_string(::getpid()) +
                         ", since " + since + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // The lock holds without the note; the note only helps a second job's message.
  }
  return true;
}

void CheckpointDirLock::renew() {
  struct stat held, now;
  if (fd_ < 0 || ::fstat(fd_, &held) != 0) return;
  // Replaced: the path names another file, or none (another failure to look, a permission or a
  // network file system's, says nothing about the lock: it is kept).
  const bool named = ::stat(path_.c_str(), &now) == 0;
  if (named ? now.st_ino == held.st_ino && now.st_dev == held.st_dev
            : errno != ENOENT && errno != ENOTDIR)
    return;
  const int old = fd_;  // held until the new lock is
  fd_ = -1;
  try {
    lock(std::string(dir_));
  } catch (...) {
    ::close(old);
    throw;
  }
  ::close(old);
  log_warning(key_ + " '" + dir_ + "' (or its lock file) was removed or replaced while this " +
              "job ran; made again and locked, and this job's checkpoints are written there");
}

CheckpointDirLock::~CheckpointDirLock() {
  if (fd_ < 0) return;
  // A job that fails (unwinding) in a directory it made and left holding only this lock file
  // takes the file away, so that the failed command leaves no directory behind (run_main
  // removes the empty directories it made).
  // Empty directories it made inside (a run folder's checkpoints/) do not count: run_main
  // removes them first.
  if (dir_made_ && std::uncaught_exceptions() > 0) {
    const auto names = dir_names(dir_);
    const bool only_lock = std::all_of(names.begin(), names.end(), [&](const std::string& name) {
      const std::string sub = join_path(dir_, name);
      return name == ".longnet.lock" ||
             (dir_made_here(sub) && path_kind(sub) == PathKind::kDirectory &&
              dir_names(sub).empty());
    });
    if (only_lock) ::unlink(path_.c_str());
  }
  ::close(fd_);  // releases the lock
}

}  // namespace longnet
