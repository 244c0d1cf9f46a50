// Bounds of a zip archive held in memory (torch.save's format: checkpoints, parameter files),
// checked before LibTorch's reader sees it: its in-memory reader does not bound its reads, so an
// archive whose directory points past its end makes it read past the buffer (found by
// tests/fuzz: an entry whose extra field runs past the central directory).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace longnet {

// The offset of the zip end record that a zip reader uses (the last signature with 22 bytes
// after it, within 64 KiB of comment of the end), or std::string::npos when there is none or its
// comment does not end the file (a file cut short, or bytes appended).
size_t zip_end_record(const std::vector<char>& bytes);

// An entry of the central directory: its name, where its (compressed) data lies in the file,
// its compression method (0: stored, as torch.save writes) and the CRC-32 it records.
struct ZipEntry {
  std::string name;
  uint64_t data = 0, size = 0;
  uint32_t crc = 0;
  int method = 0;
};

// Whether whatever a zip reader will read, found from the end record, lies inside `bytes`: the
// central directory, each entry with its name, extra field and comment, each entry's local header
// and compressed data, zip64 sizes and offsets included. Returns what is wrong, or "" when the
// layout holds; then, with `entries`, the entries in directory order.
std::string zip_layout_error(const std::vector<char>& bytes, size_t end_record,
                             std::vector<ZipEntry>* entries = nullptr);

}  // namespace longnet
