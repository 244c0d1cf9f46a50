// xPos with local positions (see xpos.h for why this equals torchscale's XPOS and stays finite).
// Tables are built in float64 on the inputs' device, (N_local, D/2) each, and kept in a small
// cache (every layer of a model asks for the same ones). On the GPU the rotation is one kernel
// (xpos_cuda.cu) in an autograd function; elsewhere it is ATen maths.
#include "longnet/core/xpos.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <list>
#include <mutex>
#include <string>

#include "longnet/core/options.h"

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>

#include "longnet/core/kernel_dtype.h"
#include "longnet/core/xpos_kernel.h"
#include "longnet/core/xpos_positions_kernel.h"
#endif

namespace longnet {

int64_t xpos_block_length(int64_t global_len, const std::vector<int64_t>& segment_lengths) {
  TORCH_CHECK(global_len >= 1, "xPos: global_len = ", global_len, " must be >= 1");
  TORCH_CHECK(!segment_lengths.empty(), "xPos: segment_lengths is empty");
  for (int64_t w : segment_lengths)
    TORCH_CHECK(w >= 1, "xPos: segment length ", w, " must be >= 1");
  return xpos_reference_block(global_len, segment_lengths);
}

void xpos_range_check(int64_t global_len, const std::vector<int64_t>& segment_lengths,
                      at::ScalarType dtype, int64_t scale_base, bool causal) {
  xpos_block_length(global_len, segment_lengths);  // its argument checks
  xpos_scales_check(global_len, segment_lengths,
                    dtype == at::kHalf     ? XposPrecision::kFloat16
                    : dtype == at::kDouble ? XposPrecision::kFloat64
                                           : XposPrecision::kFloat32,
                    scale_base, causal);
}

at::Tensor xpos_local_positions(int64_t position_offset, int64_t n_local, int64_t global_len,
                                const std::vector<int64_t>& segment_lengths, at::Device device) {
  TORCH_CHECK(position_offset >= 0 && n_local >= 0 && position_offset + n_local <= global_len,
              "xPos: local tokens [", position_offset, ", ", position_offset + n_local,
              ") must lie inside the global sequence [0, ", global_len, ")");
  const int64_t W = xpos_block_length(global_len, segment_lengths);
  // Integer maths until the subtraction, so n - c is exact at any n below 2^63.
  auto n = at::arange(position_offset, position_offset + n_local,
                      at::TensorOptions().dtype(at::kLong).device(device));
  at::Tensor local = W > 0 ? n - (at::div(n, W, "floor") * W + W / 2) : n - global_len / 2;
  return local.to(at::kDouble);
}

namespace {

// The (cos, sin) * scale^(+-l / scale_base) tables for q and k: each (N_local, D/2) in `dtype`.
struct XposTables {
  at::Tensor cos_q, sin_q, cos_k, sin_k;
};

XposTables xpos_tables(const at::Tensor& local, int64_t D, int64_t scale_base,
                       at::ScalarType dtype) {
  auto f64 = at::TensorOptions().dtype(at::kDouble).device(local.device());
  auto i2 = at::arange(0, D, 2, f64);                                   // 2i, (D/2,)
  auto theta = at::pow(10000.0, -i2 / double(D));                       // (D/2,)
  auto log_zeta = at::log((i2 + 0.4 * D) / (1.4 * D));                  // (D/2,)
  auto angle = local.unsqueeze(1) * theta.unsqueeze(0);                 // (N_local, D/2)
  auto log_scale = local.unsqueeze(1) / double(scale_base) * log_zeta;  // (N_local, D/2)
  auto up = at::exp(log_scale), down = at::exp(-log_scale);
  auto c = at::cos(angle), s = at::sin(angle);
  return {(c * up).to(dtype), (s * up).to(dtype), (c * down).to(dtype), (s * down).to(dtype)};
}

// The tables of xpos_tables for one (device, positions, D, scale base, dtype), built once: the
// last few keys are kept (training and evaluation, or a few sequence lengths, alternate).
struct XposTableKey {
  at::Device device;
  int64_t position_offset, n_local, global_len, block, D, scale_base;
  at::ScalarType dtype;
  bool operator==(const XposTableKey& o) const {
    return device == o.device && position_offset == o.position_offset && n_local == o.n_local &&
           global_len == o.global_len && block == o.block && D == o.D &&
           scale_base == o.scale_base && dtype == o.dtype;
  }
};

XposTables xpos_tables_cached(int64_t position_offset, int64_t n_local, int64_t global_len,
                              const std::vector<int64_t>& segment_lengths, int64_t D,
                              int64_t scale_base, at::ScalarType dtype, at::Device device) {
  constexpr size_t kKeep = 4;
  static std::mutex mutex;
  // Most recent first. Never destroyed: device tensors must not be freed by static destructors
  // at exit, after the CUDA runtime may have gone.
  static auto& cache = *new std::list<std::pair<XposTableKey, XposTables>>();
  // The segment lengths enter the positions only through the block length (and its validity).
  const XposTableKey key{
      device, position_offset, n_local, global_len, xpos_block_length(global_len, segment_lengths),
      D,      scale_base,      dtype};
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = cache.begin(); it != cache.end(); ++it)
      if (it->first == key) {
        cache.splice(cache.begin(), cache, it);
        return it->second;
      }
  }
  // Plain tensors even when the caller is in inference mode: a cached table may later meet
  // autograd.
  c10::InferenceMode normal_tensors(false);
  at::NoGradGuard no_grad;
  auto local = xpos_local_positions(position_offset, n_local, global_len, segment_lengths, device);
  auto t = xpos_tables(local, D, scale_base, dtype);
  std::lock_guard<std::mutex> lock(mutex);
  cache.emplace_front(key, t);
  if (cache.size() > kKeep) cache.pop_back();
  return t;
}

// x: (B, N, H, D); cos, sin: (N, D/2). Rotates each interleaved pair (x0, x1) by the table's angle
// and scales it (torchscale's x * cos + rotate_every_two(x) * sin).
at::Tensor xpos_rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t N = x.size(1), half = x.size(3) / 2;
  auto xc = x.to(cos.scalar_type());
  auto pairs = xc.unflatten(-1, {half, 2});  // (B, N, H, D/2, 2)
  auto x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  auto c = cos.view({1, N, 1, half}), s = sin.view({1, N, 1, half});
  auto out = at::stack({x0 * c - x1 * s, x1 * c + x0 * s}, -1).flatten(-2);  // (B, N, H, D)
  return out.to(x.scalar_type());
}

#ifdef LONGNET_WITH_CUDA

// The kernel: y = rotate(x) (sign +1) or its transpose (sign -1), written into y (x's shape and
// dtype, any strides over the first three dimensions, a contiguous last one).
void xpos_rotate_cuda_into(const at::Tensor& x_in, const at::Tensor& y, const at::Tensor& cos,
                           const at::Tensor& sin, float sign) {
  auto x = x_in.stride(3) == 1 ? x_in : x_in.contiguous();
  TORCH_INTERNAL_ASSERT(y.sizes() == x.sizes() && y.scalar_type() == x.scalar_type() &&
                        y.stride(3) == 1);
  c10::cuda::CUDAGuard guard(x.device());
  if (x.numel() == 0) return;
  // The tables live in a cache and may have been made on another stream: keep their memory
  // until this stream is done with them, even if the cache drops them meanwhile.
  const auto stream = at::cuda::getCurrentCUDAStream();
  for (const auto* t : {&cos, &sin})
    c10::cuda::CUDACachingAllocator::recordStream(t->storage().data_ptr(), stream);
  XposRotateParams p;
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.cos = cos.data_ptr<float>();
  p.sin = sin.data_ptr<float>();
  p.B = x.size(0);
  p.N = x.size(1);
  p.H = x.size(2);
  p.D = x.size(3);
  p.stride_b = x.stride(0);
  p.stride_n = x.stride(1);
  p.stride_h = x.stride(2);
  p.y_stride_b = y.stride(0);
  p.y_stride_n = y.stride(1);
  p.y_stride_h = y.stride(2);
  p.sign = sign;
  xpos_rotate_launch(p, kernel_dtype_code(x.scalar_type(), "xPos"), stream.stream());
}

// The same into a new contiguous tensor.
at::Tensor xpos_rotate_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                            float sign) {
  auto y = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  xpos_rotate_cuda_into(x, y, cos, sin, sign);
  return y;
}

void check_no_double_backward() {
  TORCH_CHECK(!at::GradMode::is_enabled(),
              "the xPos kernel has no double backward (create_graph=True); run xPos on the CPU "
              "for higher-order gradients");
}

// The rotation is linear in x with an orthogonal-times-scale matrix per pair, so its backward is
// the same kernel with the transposed rotation; the tables take no gradient.
class XposRotateFunction : public torch::autograd::Function<XposRotateFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& cos, const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return xpos_rotate_cuda(x, cos, sin, 1.0f);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    check_no_double_backward();
    auto saved = ctx->get_saved_variables();
    return {xpos_rotate_cuda(grads[0], saved[0], saved[1], -1.0f), at::Tensor(), at::Tensor()};
  }
};

// The self-attention form: qkv (B, N, 3, H, D), one projection's q, k and v, gives
// {rotate_q(q), rotate_k(k), v} (v a view of qkv). Its backward writes the three gradients
// straight into one (B, N, 3, H, D) tensor, the projection's output gradient, instead of the
// concatenation that separate q, k and v gradients would need.
class XposQkvFunction : public torch::autograd::Function<XposQkvFunction> {
 public:
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx,
                                              const at::Tensor& qkv, const at::Tensor& cos_q,
                                              const at::Tensor& sin_q, const at::Tensor& cos_k,
                                              const at::Tensor& sin_k) {
    ctx->save_for_backward({cos_q, sin_q, cos_k, sin_k});
    ctx->saved_data["dtype"] = qkv.scalar_type();
    return {xpos_rotate_cuda(qkv.select(2, 0), cos_q, sin_q, 1.0f),
            xpos_rotate_cuda(qkv.select(2, 1), cos_k, sin_k, 1.0f), qkv.select(2, 2)};
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    check_no_double_backward();
    auto saved = ctx->get_saved_variables();
    auto dqkv = packed_grads(grads);
    if (dqkv.defined()) {  // rotated in place: v's gradient is already where it belongs
      xpos_rotate_cuda_into(grads[0], grads[0], saved[0], saved[1], -1.0f);
      xpos_rotate_cuda_into(grads[1], grads[1], saved[2], saved[3], -1.0f);
    } else {
      const auto& any = grads[0].defined() ? grads[0] : grads[1].defined() ? grads[1] : grads[2];
      if (!any.defined())
        return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
      auto s = any.sizes().vec();  // (B, N, H, D) -> (B, N, 3, H, D)
      s.insert(s.begin() + 2, 3);
      dqkv = at::empty(s, saved[0].options().dtype(ctx->saved_data["dtype"].toScalarType()));
      for (int t = 0; t < 3; ++t) {
        auto slot = dqkv.select(2, t);
        if (!grads[t].defined())
          slot.zero_();
        else if (t < 2)
          xpos_rotate_cuda_into(grads[t].to(dqkv.scalar_type()), slot, saved[2 * t],
                                saved[2 * t + 1], -1.0f);
        else
          slot.copy_(grads[t]);
      }
    }
    return {dqkv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

 private:
  // The (B, N, 3, H, D) tensor whose slices [:, :, 0..2] the three gradients are, when they are
  // exactly that (dilated attention's backward returns them so); else undefined.
  static at::Tensor packed_grads(const torch::autograd::tensor_list& g) {
    if (!g[0].defined() || !g[1].defined() || !g[2].defined()) return {};
    const auto& a = g[0];
    const int64_t B = a.size(0), N = a.size(1), H = a.size(2), D = a.size(3), T = 3 * H * D;
    const std::vector<int64_t> strides{N * T, T, D, 1};
    for (int t = 0; t < 3; ++t) {
      const auto& x = g[t];
      if (x.sizes() != a.sizes() || x.scalar_type() != a.scalar_type() ||
          !x.storage().is_alias_of(a.storage()) || x.strides() != at::IntArrayRef(strides) ||
          x.storage_offset() != a.storage_offset() + t * H * D)
        return {};
    }
    return a.as_strided({B, N, 3, H, D}, {N * T, T, H * D, D, 1}, a.storage_offset());
  }
};

bool xpos_use_kernel(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return x.is_cuda() && (t == at::kFloat || t == at::kHalf || t == at::kBFloat16);
}
#endif

at::Tensor xpos_rotate_any(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
#ifdef LONGNET_WITH_CUDA
  if (xpos_use_kernel(x)) return XposRotateFunction::apply(x, cos, sin);
#endif
  return xpos_rotate(x, cos, sin);
}

}  // namespace

namespace {

// Checks q and k (B, N_local, H, D) and returns their tables.
XposTables xpos_checked_tables(const at::Tensor& q, const at::Tensor& k, int64_t position_offset,
                               int64_t global_len, const std::vector<int64_t>& segment_lengths,
                               int64_t scale_base) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4,
              "xPos: q and k must be (batch, seq_len, heads, head_dim); got q ", q.sizes(), ", k ",
              k.sizes());
  TORCH_CHECK(q.size(1) == k.size(1) && q.size(3) == k.size(3),
              "xPos: q and k must have the same seq_len and head_dim; got q ", q.sizes(), ", k ",
              k.sizes());
  TORCH_CHECK(q.size(3) >= 2 && q.size(3) % 2 == 0, "xPos: head_dim = ", q.size(3),
              " must be even and at least 2 (xPos rotates pairs of dimensions)");
  TORCH_CHECK(q.is_floating_point() && q.scalar_type() == k.scalar_type(),
              "xPos: q and k must have the same floating dtype; got ", q.scalar_type(), " and ",
              k.scalar_type());
  TORCH_CHECK(scale_base >= 1, "xPos: scale_base = ", scale_base, " must be >= 1");
  TORCH_CHECK(q.device() == k.device(), "xPos: q and k must be on the same device; got ",
              q.device(), " and ", k.device());
  const auto dtype = q.scalar_type();
  // 16-bit inputs are rotated in float32, then cast back.
  const auto compute = (dtype == at::kDouble) ? at::kDouble : at::kFloat;
  xpos_range_check(global_len, segment_lengths, dtype, scale_base);
  return xpos_tables_cached(position_offset, q.size(1), global_len, segment_lengths, q.size(3),
                            scale_base, compute, q.device());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> xpos_apply(const at::Tensor& q, const at::Tensor& k,
                                              int64_t position_offset, int64_t global_len,
                                              const std::vector<int64_t>& segment_lengths,
                                              int64_t scale_base) {
  auto t = xpos_checked_tables(q, k, position_offset, global_len, segment_lengths, scale_base);
  return {xpos_rotate_any(q, t.cos_q, t.sin_q), xpos_rotate_any(k, t.cos_k, t.sin_k)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> xpos_apply_qkv(
    const at::Tensor& qkv, int64_t position_offset, int64_t global_len,
    const std::vector<int64_t>& segment_lengths, int64_t scale_base) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(2) == 3,
              "xPos: qkv must be (batch, seq_len, 3, heads, head_dim); got ", qkv.sizes());
  auto u = qkv.unbind(2);
#ifdef LONGNET_WITH_CUDA
  if (xpos_use_kernel(qkv)) {
    auto t =
        xpos_checked_tables(u[0], u[1], position_offset, global_len, segment_lengths, scale_base);
    auto r = XposQkvFunction::apply(qkv, t.cos_q, t.sin_q, t.cos_k, t.sin_k);
    return {r[0], r[1], r[2]};
  }
#endif
  auto [q, k] = xpos_apply(u[0], u[1], position_offset, global_len, segment_lengths, scale_base);
  return {q, k, u[2]};
}

XposPositionTables xpos_tables_at(const at::Tensor& positions, int64_t block, int64_t head_dim,
                                  at::ScalarType dtype, int64_t scale_base) {
  TORCH_CHECK(positions.scalar_type() == at::kLong, "xPos: positions must be int64; got ",
              positions.scalar_type());
  TORCH_CHECK(block >= 1 && head_dim >= 2 && head_dim % 2 == 0 && scale_base >= 1,
              "xPos: block = ", block, " must be >= 1, head_dim = ", head_dim,
              " even, scale_base = ", scale_base, " >= 1");
  xpos_range_check(block, {block}, dtype, scale_base);
  at::NoGradGuard no_grad;
  auto n = positions.reshape({-1});
#ifdef LONGNET_WITH_CUDA
  if (n.is_cuda() && dtype == at::kFloat) {  // one kernel instead of the expression below
    c10::cuda::CUDAGuard guard(n.device());
    auto nc = n.contiguous();
    auto opts = nc.options().dtype(at::kFloat);
    XposPositionTables t{
        at::empty({nc.numel(), head_dim / 2}, opts), at::empty({nc.numel(), head_dim / 2}, opts),
        at::empty({nc.numel(), head_dim / 2}, opts), at::empty({nc.numel(), head_dim / 2}, opts)};
    XposPositionParams p;
    p.positions = nc.data_ptr<int64_t>();
    p.cos_q = t.cos_q.data_ptr<float>();
    p.sin_q = t.sin_q.data_ptr<float>();
    p.cos_k = t.cos_k.data_ptr<float>();
    p.sin_k = t.sin_k.data_ptr<float>();
    p.n = nc.numel();
    p.D = head_dim;
    p.block = block;
    p.scale_base = scale_base;
    xpos_position_tables_launch(p, at::cuda::getCurrentCUDAStream().stream());
    return t;
  }
#endif
  // Integer maths until the subtraction, as xpos_local_positions.
  auto local = (n - (at::div(n, block, "floor") * block + block / 2)).to(at::kDouble);
  auto t = xpos_tables(local, head_dim, scale_base, dtype);
  return {t.cos_q, t.sin_q, t.cos_k, t.sin_k};
}

at::Tensor xpos_rotate_at(const at::Tensor& x, const XposPositionTables& tables, bool key) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0,
              "xPos: x must be (batch, seq_len, heads, even head_dim); got ", x.sizes());
  const auto& cos = key ? tables.cos_k : tables.cos_q;
  const auto& sin = key ? tables.sin_k : tables.sin_q;
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  TORCH_CHECK(cos.dim() == 2 && cos.size(0) == B * T && cos.size(1) == D / 2, "xPos: tables for ",
              cos.size(0), " positions and head_dim ", 2 * cos.size(1), " do not fit x of shape ",
              x.sizes());
  at::NoGradGuard no_grad;
  // Every token has its own table row: (B, T) folds into the kernel's N with a batch of one.
  auto flat = x.reshape({1, B * T, H, D});
#ifdef LONGNET_WITH_CUDA
  if (xpos_use_kernel(x) && cos.scalar_type() == at::kFloat) {
    auto xc = flat.stride(3) == 1 ? flat : flat.contiguous();
    auto y = at::empty({1, B * T, H, D}, x.options());
    c10::cuda::CUDAGuard guard(x.device());
    if (x.numel() > 0) {  // no recordStream: the caller owns the tables on this stream
      XposRotateParams p;
      p.x = xc.data_ptr();
      p.y = y.data_ptr();
      p.cos = cos.data_ptr<float>();
      p.sin = sin.data_ptr<float>();
      p.B = 1;
      p.N = B * T;
      p.H = H;
      p.D = D;
      p.stride_b = xc.stride(0);
      p.stride_n = xc.stride(1);
      p.stride_h = xc.stride(2);
      p.y_stride_b = y.stride(0);
      p.y_stride_n = y.stride(1);
      p.y_stride_h = y.stride(2);
      p.sign = 1.0f;
      xpos_rotate_launch(p, kernel_dtype_code(x.scalar_type(), "xPos"),
                         at::cuda::getCurrentCUDAStream().stream());
    }
    return y.view({B, T, H, D});
  }
#endif
  return xpos_rotate(flat, cos, sin).view({B, T, H, D});
}

XPosImpl::XPosImpl(int64_t head_dim, int64_t scale_base)
    : head_dim_(head_dim), scale_base_(scale_base) {
  TORCH_CHECK(head_dim >= 2 && head_dim % 2 == 0, "XPos: head_dim = ", head_dim,
              " must be even (xPos rotates pairs of dimensions)");
  TORCH_CHECK(scale_base >= 1, "XPos: scale_base = ", scale_base, " must be >= 1");
}

std::tuple<at::Tensor, at::Tensor> XPosImpl::forward(const at::Tensor& q, const at::Tensor& k,
                                                     int64_t position_offset, int64_t global_len,
                                                     const std::vector<int64_t>& segment_lengths) {
  TORCH_CHECK(q.dim() == 4 && q.size(3) == head_dim_, "XPos: expected q of shape (B, N, H, ",
              head_dim_, "); got ", q.sizes());
  return xpos_apply(q, k, position_offset, global_len, segment_lengths, scale_base_);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> XPosImpl::forward_qkv(
    const at::Tensor& qkv, int64_t position_offset, int64_t global_len,
    const std::vector<int64_t>& segment_lengths) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(4) == head_dim_,
              "XPos: expected qkv of shape (B, N, 3, H, ", head_dim_, "); got ", qkv.sizes());
  return xpos_apply_qkv(qkv, position_offset, global_len, segment_lengths, scale_base_);
}

}  // namespace longnet
