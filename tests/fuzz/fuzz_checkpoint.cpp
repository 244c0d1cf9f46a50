// libFuzzer target for the checkpoint reader (train/checkpoint_files.h): any bytes, as a
// checkpoint file, must either read back and verify or be refused with std::runtime_error naming
// the file (truncated, corrupted, not a checkpoint): never crash, hang or throw anything else.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "longnet/train/checkpoint_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      "/tmp/longnet_fuzz_checkpoint_" + std::to_string(::getpid()) + ".ckpt";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  try {
    longnet::checkpoint_read(path);
  } catch (const std::runtime_error&) {
  }
  ::unlink(path.c_str());
  return 0;
}
