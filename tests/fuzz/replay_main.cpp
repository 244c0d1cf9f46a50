// Replays a fuzzing corpus through LLVMFuzzerTestOneInput without libFuzzer, so CI checks every
// input the fuzzer ever kept (and every crash it found, once fixed) with the normal compiler.
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int files = 0;
  for (int a = 1; a < argc; ++a) {
    DIR* dir = ::opendir(argv[a]);
    if (dir == nullptr) {
      std::fprintf(stderr, "replay: cannot open %s\n", argv[a]);
      return 1;
    }
    std::vector<std::string> names;
    while (dirent* e = ::readdir(dir))
      if (e->d_name[0] != '.') names.push_back(std::string(argv[a]) + "/" + e->d_name);
    ::closedir(dir);
    for (const auto& n : names) {
      std::ifstream in(n, std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      const std::string text = s.str();
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(text.data()), text.size());
      ++files;
    }
  }
  std::printf("replay: %d inputs, no crash\n", files);
  return 0;
}
