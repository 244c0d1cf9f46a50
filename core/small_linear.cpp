// The fused small-batch linear's ATen side (see small_linear.h).
#include "longnet/core/small_linear.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "longnet/core/kernel_dtype.h"
#endif

namespace longnet {

namespace {

int activation_code(SmallLinearActivation a) {
  switch (a) {
    case SmallLinearActivation::gelu:
      return kSmallLinearGelu;
    case SmallLinearActivation::relu:
      return kSmallLinearRelu;
    default:
      return kSmallLinearNone;
  }
}

}  // namespace

bool small_linear_supported(const at::Tensor& x, const SmallLinearArgs& a) {
#ifdef LONGNET_WITH_CUDA
  const auto t = x.scalar_type();
  if (!x.is_cuda() || x.dim() != 2 || !a.weight.defined() || a.weight.dim() != 2 ||
      (t != at::kFloat && t != at::kHalf && t != at::kBFloat16))
    return false;
  const int64_t M = x.size(0), K = x.size(1), es = x.element_size();
  if (M < 1 || M > kSmallLinearMaxRows || K < 1 || K % (16 / es) != 0 ||
      M * K * es > kSmallLinearMaxStage)
    return false;
  // The staged rows and the kernel's static scratch (under 1 KiB) within a block's shared
  // memory on this GPU.
  if (M * K * es + 1024 >
      int64_t(at::cuda::getDeviceProperties(x.device().index())->sharedMemPerBlockOptin))
    return false;
  auto same = [&](const at::Tensor& u) {
    return u.scalar_type() == t && u.device() == x.device() && u.is_contiguous();
  };
  if (!same(a.weight) || a.weight.size(1) != K || !kernel_aligned16(a.weight)) return false;
  if (a.bias.defined() &&
      (!same(a.bias) || a.bias.dim() != 1 || a.bias.size(0) != a.weight.size(0)))
    return false;
  if (a.gamma.defined() != a.beta.defined()) return false;
  for (const auto* g : {&a.gamma, &a.beta})
    if (g->defined() && (g->scalar_type() != at::kFloat || g->device() != x.device() ||
                         !g->is_contiguous() || g->numel() != K))
      return false;
  if (a.rotate) {
    const int64_t D = a.rotate_head_dim, N = a.weight.size(0);
    if (D < 2 || D % 2 != 0 || a.rotate_width < D || a.rotate_width % D != 0 ||
        2 * a.rotate_width > N || N % 2 != 0)
      return false;
    const auto& r = *a.rotate;
    for (const auto* t : {&r.cos_q, &r.sin_q, &r.cos_k, &r.sin_k})
      if (!t->defined() || t->scalar_type() != at::kFloat || t->device() != x.device() ||
          !t->is_contiguous() || t->dim() != 2 || t->size(0) != M || t->size(1) != D / 2)
        return false;
  }
  return true;
#else
  (void)x, (void)a;
  return false;
#endif
}

at::Tensor small_linear(const at::Tensor& x_in, const SmallLinearArgs& a,
                        const at::Tensor& residual) {
  TORCH_CHECK(small_linear_supported(x_in, a), "small_linear: the fused kernel does not take x ",
              x_in.sizes(), " ", x_in.scalar_type(), " on ", x_in.device(),
              " with this weight (see small_linear.h)");
#ifdef LONGNET_WITH_CUDA
  c10::cuda::CUDAGuard guard(x_in.device());
  auto x = kernel_ready(x_in);
  const int64_t M = x.size(0), N = a.weight.size(0);
  auto y = at::empty({M, N}, x.options());
  TORCH_CHECK(!(a.rotate && residual.defined()),
              "small_linear: xPos on the output takes no residual");
  if (residual.defined())
    TORCH_CHECK(residual.sizes() == y.sizes() && residual.scalar_type() == x.scalar_type() &&
                    residual.device() == x.device(),
                "small_linear: residual must be (", M, ", ", N, ") ", x.scalar_type(), "; got ",
                residual.sizes(), " ", residual.scalar_type());
  auto res = residual.defined() ? residual.contiguous() : residual;
  SmallLinearParams p;
  p.x = x.data_ptr();
  p.w = a.weight.data_ptr();
  p.bias = a.bias.defined() ? a.bias.data_ptr() : nullptr;
  p.gamma = a.gamma.defined() ? a.gamma.data_ptr<float>() : nullptr;
  p.beta = a.beta.defined() ? a.beta.data_ptr<float>() : nullptr;
  p.residual = res.defined() ? res.data_ptr() : nullptr;
  p.y = y.data_ptr();
  p.M = M, p.N = N, p.K = x.size(1);
  p.eps = static_cast<float>(a.eps);
  p.activation = activation_code(a.activation);
  if (a.rotate) {
    p.cos_q = a.rotate->cos_q.data_ptr<float>();
    p.sin_q = a.rotate->sin_q.data_ptr<float>();
    p.cos_k = a.rotate->cos_k.data_ptr<float>();
    p.sin_k = a.rotate->sin_k.data_ptr<float>();
    p.rot_width = a.rotate_width;
    p.rot_head_dim = a.rotate_head_dim;
  }
  small_linear_launch(p, kernel_dtype_code(x.scalar_type(), "small_linear"),
                      at::cuda::getCurrentCUDAStream().stream());
  return y;
#else
  (void)residual;
  return at::Tensor();
#endif
}

at::Tensor small_linear_reference(const at::Tensor& x, const SmallLinearArgs& a,
                                  const at::Tensor& residual) {
  // Statistics and sums in float32 (float64 for float64 inputs), each result in x's dtype.
  const auto ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto h = x;
  if (a.activation == SmallLinearActivation::gelu) h = at::gelu(h);
  if (a.activation == SmallLinearActivation::relu) h = at::relu(h);
  if (a.gamma.defined())
    h = at::layer_norm(h.to(ct), {h.size(-1)}, a.gamma.to(ct), a.beta.to(ct), a.eps)
            .to(x.scalar_type());
  auto y = at::linear(h, a.weight, a.bias);
  if (residual.defined()) y = (y.to(ct) + residual.to(ct)).to(x.scalar_type());
  if (a.rotate) {
    const int64_t M = y.size(0), W = a.rotate_width, D = a.rotate_head_dim;
    auto part = [&](int64_t begin, int64_t width) { return y.narrow(1, begin, width); };
    auto q = xpos_rotate_at(part(0, W).reshape({M, 1, W / D, D}), *a.rotate, /*key=*/false);
    auto k = xpos_rotate_at(part(W, W).reshape({M, 1, W / D, D}), *a.rotate, /*key=*/true);
    y = at::cat({q.reshape({M, W}), k.reshape({M, W}), part(2 * W, y.size(1) - 2 * W)}, 1);
  }
  return y;
}

}  // namespace longnet
