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

// Whether whatever a zip reader will read, found from the end record, lies inside `bytes`: the
// central directory, each entry with its name, extra field and comment, each entry's local header
// and compressed data, zip64 sizes and offsets included. Returns what is wrong, or "" when the
// layout holds.
std::string zip_layout_error(const std::vector<char>& bytes, size_t end_record);

}  // namespace longnet
