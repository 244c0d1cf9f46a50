// Files for tests: a temporary directory removed with its contents at scope exit, and whole-file
// writes and reads. POSIX calls rather than std::filesystem (see core/file_util.h).
#pragma once

#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace longnet::testing {

// A fresh directory /tmp/longnet_PREFIX_XXXXXX, removed depth first (links not followed) with
// everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "test") {
    std::string tmpl = "/tmp/longnet_" + prefix + "_XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
  }
  ~TempDir() {
    ::nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes content to path, creating the missing directories above it.
inline void write_file(const std::string& path, const std::string& content) {
  for (size_t pos = 1; pos < path.size(); ++pos)
    if (path[pos] == '/') ::mkdir(path.substr(0, pos).c_str(), 0755);
  std::ofstream(path, std::ios::binary) << content;
}

// The whole file ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace longnet::testing
