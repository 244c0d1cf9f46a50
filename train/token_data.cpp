// Byte-token files and their sampler (see token_data.h). The build streams files straight to
// disk (a corpus can be far larger than memory) and decides the split from path hashes alone,
// so the same directory always gives the same file.
#include "train/token_data.h"

#include "core/file_util.h"

#include <ATen/ATen.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include "train/token_header.h"

namespace longnet {
namespace {

constexpr uint32_t kHeaderBytes = kTokenHeaderBytes;
constexpr uint64_t kMaxFileBytes = 16u << 20;
constexpr size_t kSniffBytes = 8192;

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

// Uniform in [0, n) from 64 random bits (multiply-high; bias at most n / 2^64).
int64_t below(uint64_t bits, int64_t n) {
  return static_cast<int64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(n)) >>
                              64);
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
  std::ifstream in(p, std::ios::binary);
  if (!in) return Sniff::kOther;
  char buf[kSniffBytes];
  in.read(buf, sizeof(buf));
  std::streamsize n = in.gcount();
  if (n <= 0) return Sniff::kOther;
  return std::memchr(buf, 0, static_cast<size_t>(n)) ? Sniff::kBinary : Sniff::kText;
}

// Regular files under `dir` with their paths relative to the walk's root. Links are skipped,
// never followed (no loops, no file taken twice). POSIX calls rather than std::filesystem:
// libtorch.so exports std::filesystem symbols of another build that the dynamic linker may
// bind to instead of libstdc++'s (they crash).
struct FileEntry {
  std::string path, rel;
  uint64_t size;
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
      out.push_back({path, r, static_cast<uint64_t>(st.st_size)});
    }
  }
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

  DataBuildSummary sum;
  std::vector<Candidate> files;
  std::vector<FileEntry> entries;
  walk(src_dir, "", entries, sum.other_skipped);
  for (auto& e : entries) {
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
    throw std::runtime_error("data build: no text files under '" + src_dir + "' (" +
                             std::to_string(sum.binary_files) + " binary, " +
                             std::to_string(sum.large_files) + " larger than 16 MiB, " +
                             std::to_string(sum.other_skipped) +
                             " empty or unreadable); give a directory of text or code");
  // Directory order is unspecified; sorting makes the output a function of the contents.
  std::sort(files.begin(), files.end(),
            [](const Candidate& a, const Candidate& b) { return a.rel < b.rel; });
  if (files.size() >= 2) {
    auto by_u = [](const Candidate& a, const Candidate& b) { return a.u < b.u; };
    if (std::none_of(files.begin(), files.end(), [](const Candidate& c) { return c.val; }))
      std::min_element(files.begin(), files.end(), by_u)->val = true;
    if (std::all_of(files.begin(), files.end(), [](const Candidate& c) { return c.val; }))
      std::max_element(files.begin(), files.end(), by_u)->val = false;
  }

  const auto slash = out_path.rfind('/');
  if (slash != std::string::npos && slash > 0 && !make_dirs(out_path.substr(0, slash)))
    throw std::runtime_error("data build: cannot create the directory of '" + out_path +
                             "': " + std::strerror(errno));
  const std::string tmp = out_path + ".tmp";
  std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
  if (!o)
    throw std::runtime_error("data build: cannot create '" + tmp + "': " + std::strerror(errno));
  unsigned char header[kHeaderBytes] = {};
  o.write(reinterpret_cast<const char*>(header), kHeaderBytes);
  std::vector<char> buf;
  for (bool val : {false, true}) {
    int64_t& tokens = val ? sum.val_tokens : sum.train_tokens;
    int64_t& count = val ? sum.val_files : sum.train_files;
    for (const auto& c : files) {
      if (c.val != val) continue;
      std::ifstream in(c.path, std::ios::binary);
      buf.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (count > 0) {
        o.put('\n');
        ++tokens;
      }
      o.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      tokens += static_cast<int64_t>(buf.size());
      ++count;
    }
  }
  token_header_write(header, static_cast<uint64_t>(sum.train_tokens),
                     static_cast<uint64_t>(sum.val_tokens));
  o.seekp(0);
  o.write(reinterpret_cast<const char*>(header), kHeaderBytes);
  o.close();
  if (!o) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("data build: writing '" + tmp + "' failed (disk full?)");
  }
  if (::rename(tmp.c_str(), out_path.c_str()) != 0)
    throw std::runtime_error("data build: cannot rename '" + tmp + "' to '" + out_path +
                             "': " + std::strerror(errno));
  sum.text_files = static_cast<int64_t>(files.size());
  std::cout << "data build: " << src_dir << " -> " << out_path << ": " << sum.text_files
            << " text files, " << mb(sum.train_tokens + sum.val_tokens) << " (skipped "
            << sum.binary_files << " binary, " << sum.large_files << " over 16 MiB, "
            << sum.other_skipped << " empty or unreadable); train " << millions(sum.train_tokens)
            << " tokens (" << sum.train_files << " files), validation " << millions(sum.val_tokens)
            << " tokens (" << sum.val_files << " files)" << std::endl;
  return sum;
}

// ---- reading ---------------------------------------------------------------------------------

TokenFile::TokenFile(const std::string& path) : path_(path) {
  const std::string who = "token file '" + path + "'";
  const std::string rebuild = "; rebuild it with: longnet data build SRC_DIR " + path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      throw std::runtime_error(who +
                               " does not exist; build it with: longnet data build "
                               "SRC_DIR " +
                               path);
    throw std::runtime_error(who + ": cannot open: " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(who + " is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    throw std::runtime_error(who + " is empty" + rebuild);
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file open
  if (p == MAP_FAILED) throw std::runtime_error(who + ": mmap failed: " + std::strerror(err));
  map_ = p;
  map_size_ = size;
  try {
    const auto* b = static_cast<const unsigned char*>(p);
    const auto [t, v] = token_header_check(b, size, path);
    train_ = c10::ArrayRef<uint8_t>(b + kHeaderBytes, t);
    val_ = c10::ArrayRef<uint8_t>(b + kHeaderBytes + t, v);
  } catch (...) {
    ::munmap(map_, map_size_);
    throw;
  }
}

TokenFile::~TokenFile() {
  if (map_) ::munmap(map_, map_size_);
}

// ---- sampling --------------------------------------------------------------------------------

TokenSampler::TokenSampler(const TokenFile& file, const SamplerOptions& options,
                           int64_t samples_consumed)
    : file_(file), opt_(options) {
  const auto& o = opt_;
  if (o.seq_len < 1 || o.batch_size < 1 || o.val_batches < 1)
    throw std::invalid_argument("TokenSampler: seq_len = " + std::to_string(o.seq_len) +
                                ", batch_size = " + std::to_string(o.batch_size) +
                                " and val_batches = " + std::to_string(o.val_batches) +
                                " must all be >= 1");
  if (o.dp_size < 1 || o.dp_index < 0 || o.dp_index >= o.dp_size || o.sp_size < 1 ||
      o.sp_index < 0 || o.sp_index >= o.sp_size)
    throw std::invalid_argument("TokenSampler: rank (dp " + std::to_string(o.dp_index) + " of " +
                                std::to_string(o.dp_size) + ", sp " + std::to_string(o.sp_index) +
                                " of " + std::to_string(o.sp_size) + ") is outside the grid");
  if (o.seq_len % o.sp_size != 0)
    throw std::invalid_argument("TokenSampler: seq_len " + std::to_string(o.seq_len) +
                                " is not divisible by sequence_parallel " +
                                std::to_string(o.sp_size));
  const std::pair<const char*, int64_t> splits[] = {
      {"training", static_cast<int64_t>(file.train().size())},
      {"validation", static_cast<int64_t>(file.val().size())}};
  for (const auto& [name, n] : splits)
    if (n < o.seq_len + 1)
      throw std::runtime_error("token file '" + file.path() + "': the " + name + " split has " +
                               std::to_string(n) +
                               " tokens, shorter than one sequence (data.seq_len + 1 = " +
                               std::to_string(o.seq_len + 1) +
                               " tokens): use a smaller data.seq_len or a larger corpus");
  set_position(samples_consumed);
}

void TokenSampler::set_position(int64_t samples_consumed) {
  if (samples_consumed < 0)
    throw std::invalid_argument("TokenSampler: position " + std::to_string(samples_consumed) +
                                " must be >= 0");
  position_ = samples_consumed;
}

int64_t TokenSampler::train_start(int64_t sample) const {
  const int64_t starts = static_cast<int64_t>(file_.train().size()) - opt_.seq_len;
  return below(splitmix64(splitmix64(opt_.seed) + static_cast<uint64_t>(sample)), starts);
}

TokenBatch TokenSampler::slice(c10::ArrayRef<uint8_t> split,
                               const std::vector<int64_t>& starts) const {
  const int64_t L = opt_.seq_len / opt_.sp_size, B = static_cast<int64_t>(starts.size());
  auto inputs = at::empty({B, L}, at::kLong), targets = at::empty({B, L}, at::kLong);
  int64_t* x = inputs.data_ptr<int64_t>();
  int64_t* y = targets.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const uint8_t* src = split.data() + starts[b] + opt_.sp_index * L;
    for (int64_t i = 0; i < L; ++i) {
      x[b * L + i] = src[i];
      y[b * L + i] = src[i + 1];  // in range: start + seq_len < split size
    }
  }
  return {inputs, targets};
}

TokenBatch TokenSampler::next_batch() {
  std::vector<int64_t> starts(opt_.batch_size);
  const int64_t first = position_ + opt_.dp_index * opt_.batch_size;
  for (int64_t b = 0; b < opt_.batch_size; ++b) starts[b] = train_start(first + b);
  position_ += opt_.dp_size * opt_.batch_size;
  return slice(file_.train(), starts);
}

TokenBatch TokenSampler::val_batch(int64_t i) const {
  if (i < 0 || i >= opt_.val_batches)
    throw std::invalid_argument("TokenSampler::val_batch: " + std::to_string(i) +
                                " is outside [0, " + std::to_string(opt_.val_batches) + ")");
  // Windows j = 0..total-1 spread evenly from the first to the last possible start.
  const int64_t total = opt_.val_batches * opt_.dp_size * opt_.batch_size;
  const int64_t last = static_cast<int64_t>(file_.val().size()) - opt_.seq_len - 1;
  std::vector<int64_t> starts(opt_.batch_size);
  for (int64_t b = 0; b < opt_.batch_size; ++b) {
    const int64_t j = (i * opt_.dp_size + opt_.dp_index) * opt_.batch_size + b;
    starts[b] =
        total == 1 ? 0 : static_cast<int64_t>(static_cast<__int128>(j) * last / (total - 1));
  }
  return slice(file_.val(), starts);
}

}  // namespace longnet
