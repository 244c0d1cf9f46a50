// LayerNorm dispatch and the fused kernel's autograd function (see layer_norm.h).
#include "core/layer_norm.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/layer_norm_kernel.h"
#endif

namespace longnet {

namespace {

bool fused_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

#ifdef LONGNET_WITH_CUDA
int dtype_code(at::ScalarType t) {
  return t == at::kFloat ? 0 : t == at::kHalf ? 1 : 2;
}

bool aligned16(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// t contiguous and starting on a 16-byte boundary (the kernels' vector loads), copied if need be
// (a view at an odd offset).
at::Tensor kernel_ready(const at::Tensor& t) {
  auto c = t.contiguous();
  return aligned16(c) ? c : c.clone();
}

class FusedLayerNormFunction : public torch::autograd::Function<FusedLayerNormFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
                            const at::Tensor& weight, const at::Tensor& bias, double eps,
                            at::ScalarType out_dtype) {
    c10::cuda::CUDAGuard guard(x_in.device());
    auto x = kernel_ready(x_in);
    const int64_t C = x.size(-1), rows = x.numel() / C;
    auto f32 = x.options().dtype(at::kFloat);
    auto gamma = kernel_ready(weight.to(at::kFloat)), beta = kernel_ready(bias.to(at::kFloat));
    auto y = at::empty(x.sizes(), x.options().dtype(out_dtype));
    auto mean = at::empty({rows}, f32), rstd = at::empty({rows}, f32);
    LayerNormParams p;
    p.x = x.data_ptr();
    p.y = y.data_ptr();
    p.gamma = gamma.data_ptr<float>();
    p.beta = beta.data_ptr<float>();
    p.mean = mean.data_ptr<float>();
    p.rstd = rstd.data_ptr<float>();
    p.rows = rows;
    p.C = C;
    p.eps = static_cast<float>(eps);
    TORCH_INTERNAL_ASSERT(aligned16(x) && aligned16(y) && aligned16(gamma) && aligned16(beta));
    layer_norm_forward_launch(p, dtype_code(x.scalar_type()), dtype_code(out_dtype),
                              at::cuda::getCurrentCUDAStream().stream());
    ctx->save_for_backward({x, gamma, mean, rstd});
    ctx->saved_data["weight_dtype"] = weight.scalar_type();
    ctx->saved_data["bias_dtype"] = bias.scalar_type();
    ctx->saved_data["out_dtype"] = out_dtype;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    c10::cuda::CUDAGuard guard(x.device());
    const auto out_dtype = ctx->saved_data["out_dtype"].toScalarType();
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "the fused LayerNorm has no double backward (create_graph=True); run the module "
                "on the CPU or without the fused kernel for higher-order gradients");
    auto dy = kernel_ready(grads[0].to(out_dtype));
    const int64_t C = x.size(-1), rows = x.numel() / C;
    const int64_t chunks = layer_norm_row_chunks(rows, C);
    auto dx = at::empty_like(x);
    // (zeros: with no rows the kernels do not run, and the sums must come out 0)
    auto part_g = at::zeros({chunks, C}, x.options().dtype(at::kFloat)),
         part_b = at::zeros({chunks, C}, x.options().dtype(at::kFloat));
    LayerNormParams p;
    p.x = x.data_ptr();
    p.dy = dy.data_ptr();
    p.dx = dx.data_ptr();
    p.gamma = saved[1].data_ptr<float>();
    p.mean = saved[2].data_ptr<float>();
    p.rstd = saved[3].data_ptr<float>();
    p.dgamma_part = part_g.data_ptr<float>();
    p.dbeta_part = part_b.data_ptr<float>();
    p.rows = rows;
    p.C = C;
    p.row_chunks = chunks;
    TORCH_INTERNAL_ASSERT(aligned16(dy) && aligned16(dx));
    layer_norm_backward_launch(p, dtype_code(x.scalar_type()), dtype_code(out_dtype),
                               at::cuda::getCurrentCUDAStream().stream());
    auto dgamma = part_g.sum(0).to(ctx->saved_data["weight_dtype"].toScalarType());
    auto dbeta = part_b.sum(0).to(ctx->saved_data["bias_dtype"].toScalarType());
    return {dx, dgamma, dbeta, at::Tensor(), at::Tensor()};
  }
};
#endif

}  // namespace

bool layer_norm_fused_supported(const at::Tensor& x, const at::Tensor& weight,
                                const at::Tensor& bias) {
#ifdef LONGNET_WITH_CUDA
  return x.is_cuda() && x.dim() >= 1 && x.size(-1) % 4 == 0 && x.size(-1) > 0 &&
         fused_dtype(x.scalar_type()) && weight.defined() && bias.defined() && weight.dim() == 1 &&
         weight.size(0) == x.size(-1) && bias.sizes() == weight.sizes() &&
         fused_dtype(weight.scalar_type()) && fused_dtype(bias.scalar_type()) &&
         weight.device() == x.device() && bias.device() == x.device();
#else
  return false;
#endif
}

at::Tensor layer_norm_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            double eps, at::ScalarType out_dtype) {
  TORCH_CHECK(layer_norm_fused_supported(x, weight, bias) && fused_dtype(out_dtype),
              "fused LayerNorm: needs a CUDA input of float32, float16 or bfloat16 whose last "
              "dimension is a multiple of 4, and weight and bias of that size on its device; got "
              "x ",
              x.sizes(), " ", x.scalar_type(), " on ", x.device());
#ifdef LONGNET_WITH_CUDA
  return FusedLayerNormFunction::apply(x, weight, bias, eps, out_dtype);
#else
  TORCH_CHECK(false, "fused LayerNorm: built without CUDA");
#endif
}

at::Tensor layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& x) {
  const auto& o = norm->options;
  if (o.normalized_shape().size() != 1 || !layer_norm_fused_supported(x, norm->weight, norm->bias))
    return norm(x);
  const auto dev = x.device().type();
  const auto out_dtype = at::autocast::is_autocast_enabled(dev)
                             ? at::autocast::get_autocast_dtype(dev)
                             : x.scalar_type();
  return layer_norm_fused(x, norm->weight, norm->bias, o.eps(), out_dtype);
}

}  // namespace longnet
