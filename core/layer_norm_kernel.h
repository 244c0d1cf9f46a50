// The fused LayerNorm kernels' launch interface (torch-free, so that nvcc never sees LibTorch
// headers). layer_norm.cpp wraps them in an autograd function; see layer_norm.h for the maths.
#pragma once

#include <cstdint>

namespace longnet {

// Rows of C elements, contiguous and 16-byte aligned, C a multiple of 4. Statistics and
// arithmetic in float32; gamma and beta float32.
struct LayerNormParams {
  const void* x = nullptr;       // (rows, C), dtype in_dtype
  void* y = nullptr;             // forward: (rows, C), dtype out_dtype
  const void* dy = nullptr;      // backward: (rows, C), dtype out_dtype
  void* dx = nullptr;            // backward: (rows, C), dtype in_dtype
  const float* gamma = nullptr;  // (C,)
  const float* beta = nullptr;   // (C,)
  float* mean = nullptr;         // (rows,)
  float* rstd = nullptr;         // (rows,)
  float* dgamma_part = nullptr;  // backward: (row_chunks, C) partial sums of dy * xhat
  float* dbeta_part = nullptr;   // backward: (row_chunks, C) partial sums of dy
  int64_t rows = 0, C = 0;
  int64_t row_chunks = 0;  // backward: how many row chunks the parameter gradients are split in
  float eps = 1e-5f;
  // The residual add fused in front (C <= kLayerNormMaxCachedC only). Forward: the normalised
  // row is sum = x + res (res in out_dtype, added in float32 and rounded to in_dtype), written
  // to `sum`. Backward (x is then the saved sum): dx += dsum when dsum is given, and dres, when
  // given, gets dx again in out_dtype (the residual input's gradient).
  const void* res = nullptr;   // forward: (rows, C), dtype out_dtype
  void* sum = nullptr;         // forward: (rows, C), dtype in_dtype
  const void* dsum = nullptr;  // backward: (rows, C), dtype in_dtype
  void* dres = nullptr;        // backward: (rows, C), dtype out_dtype
  // A GELU fused in front (C <= kLayerNormMaxCachedC, no residual). Forward, with gelu_out: x
  // holds the GELU's input h, and the row normalised is gelu(h) (exact GELU) rounded to in_dtype,
  // as ATen's GELU would store it; it is written to gelu_out. Backward, with gelu_in (neither
  // dsum nor dres): x = gelu(gelu_in), and dx is the gradient of gelu_in instead: the
  // LayerNorm's input gradient rounded to in_dtype (as a separate GELU backward reads it) times
  // gelu'(gelu_in).
  void* gelu_out = nullptr;       // forward: (rows, C), dtype in_dtype
  const void* gelu_in = nullptr;  // backward: (rows, C), dtype in_dtype
};

// Rows up to this width are held in registers (one read of each input); wider rows are walked
// in several passes and take no fused residual.
constexpr int64_t kLayerNormMaxCachedC = 4096;

// dtype codes: 0 float32, 1 float16, 2 bfloat16. stream: a cudaStream_t.
void layer_norm_forward_launch(const LayerNormParams& p, int in_dtype, int out_dtype, void* stream);
void layer_norm_backward_launch(const LayerNormParams& p, int in_dtype, int out_dtype,
                                void* stream);
// The row_chunks layer_norm_backward_launch wants for rows x C on the current device.
int64_t layer_norm_row_chunks(int64_t rows, int64_t C);

}  // namespace longnet
