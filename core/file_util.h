// Small POSIX file helpers shared by every layer. POSIX calls rather than std::filesystem:
// libtorch.so exports std::filesystem symbols of another build that the dynamic linker may bind
// to instead of libstdc++'s, and they crash.
#pragma once

#include <string>

namespace longnet {

// mkdir -p. Returns false with errno set on failure (including "exists but is not a directory").
bool make_dirs(const std::string& dir);
// mkdir -p of the directory part of path (nothing when path has none).
bool make_parent_dirs(const std::string& path);

}  // namespace longnet
