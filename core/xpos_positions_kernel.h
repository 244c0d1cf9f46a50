// The xPos tables of explicit positions (xpos_tables_at in xpos.h) in one kernel, torch-free for
// nvcc: the decode step builds them every step, and the ATen expression is some thirty small
// kernels. Same float64 formulas as xpos.cpp's xpos_tables, then rounded to float32.
#pragma once

#include <cstdint>

namespace longnet {

struct XposPositionParams {
  const int64_t* positions = nullptr;  // (n,)
  float* cos_q = nullptr;              // (n, D/2) each, contiguous
  float* sin_q = nullptr;
  float* cos_k = nullptr;
  float* sin_k = nullptr;
  int64_t n = 0, D = 0, block = 0, scale_base = 512;
};

// stream: a cudaStream_t.
void xpos_position_tables_launch(const XposPositionParams& p, void* stream);

}  // namespace longnet
