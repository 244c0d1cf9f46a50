// POSIX directory helpers (see file_util.h).
#include "core/file_util.h"

#include <sys/stat.h>

#include <cerrno>

namespace longnet {

bool make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    if (::mkdir(dir.substr(0, pos).c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode)) return errno = ENOTDIR, false;
  return true;
}

bool make_parent_dirs(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return true;
  return make_dirs(path.substr(0, slash));
}

}  // namespace longnet
