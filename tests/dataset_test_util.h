// Helpers of the dataset tests (test_dataset_build.cpp, test_dataset_read.cpp): temporary
// directories, files, a small corpus, and reading a split back whole. POSIX calls rather than
// std::filesystem (see core/file_util.h).
#pragma once

#include <dirent.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "longnet/tests/temp_files.h"
#include "longnet/tests/test_util.h"
#include "longnet/train/token_dataset.h"

namespace longnet::testing {

inline bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// `files` text files of random words under dir/NAME (sorted names f00.txt, f01.txt, ...), each
// about `bytes` long; returns their contents in name order.
inline std::vector<std::string> make_corpus(const std::string& dir, int files, int bytes,
                                            unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < files; ++i) {
    std::string s;
    while (static_cast<int>(s.size()) < bytes + static_cast<int>(rng() % 50)) {
      for (int k = 0, n = 1 + rng() % 8; k < n; ++k) s += static_cast<char>('a' + rng() % 26);
      s += rng() % 9 == 0 ? '\n' : ' ';
    }
    char name[32];
    std::snprintf(name, sizeof(name), "/f%02d.txt", i);
    write_file(dir + name, s);
    out.push_back(s);
  }
  return out;
}

// A whole split as ids.
inline std::vector<int64_t> split_ids(const TokenDataset& d, DataSplit s) {
  std::vector<int64_t> ids(static_cast<size_t>(d.tokens(s)));
  d.read(s, 0, d.tokens(s), ids.data());
  return ids;
}

// The files in a directory (names), sorted.
inline std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        names.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace longnet::testing
