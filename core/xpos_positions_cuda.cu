// The xPos tables of explicit positions in one kernel (see xpos_positions_kernel.h): one thread
// per (position, pair), float64 maths as xpos.cpp's ATen expression, float32 results.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "longnet/core/xpos_positions_kernel.h"

namespace longnet {
namespace {

__global__ void xpos_position_tables_kernel(const XposPositionParams p) {
  const int64_t half = p.D / 2;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.n * half) return;
  const int64_t t = idx / half, i = idx % half;
  const int64_t pos = p.positions[t];
  // Integer maths until the subtraction (floor division: positions are >= 0).
  const int64_t block_start =
      (pos >= 0 ? pos / p.block : -((-pos + p.block - 1) / p.block)) * p.block;
  const double local = double(pos - (block_start + p.block / 2));
  const double D = double(p.D), i2 = double(2 * i);
  const double theta = pow(10000.0, -i2 / D);
  const double log_zeta = log((i2 + 0.4 * D) / (1.4 * D));
  const double angle = local * theta;
  const double log_scale = local / double(p.scale_base) * log_zeta;
  const double up = exp(log_scale), down = exp(-log_scale);
  const double c = cos(angle), s = sin(angle);
  p.cos_q[idx] = __double2float_rn(c * up);
  p.sin_q[idx] = __double2float_rn(s * up);
  p.cos_k[idx] = __double2float_rn(c * down);
  p.sin_k[idx] = __double2float_rn(s * down);
}

}  // namespace

void xpos_position_tables_launch(const XposPositionParams& p, void* stream) {
  const int64_t total = p.n * (p.D / 2);
  if (total == 0) return;
  constexpr int kThreads = 128;
  const auto blocks = static_cast<unsigned>((total + kThreads - 1) / kThreads);
  xpos_position_tables_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(p);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("xPos position tables kernel: launch: ") +
                             cudaGetErrorString(e));
}

}  // namespace longnet
