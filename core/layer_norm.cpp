// LayerNorm dispatch and the fused kernel's autograd function (see layer_norm.h).
#include "longnet/core/layer_norm.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "longnet/core/kernel_dtype.h"
#include "longnet/core/layer_norm_kernel.h"
#endif

namespace longnet {

namespace {

bool fused_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

#ifdef LONGNET_WITH_CUDA

// The kernels' parameters for rows of x (..., C), with gamma and beta float32.
LayerNormParams ln_params(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& mean,
                          const at::Tensor& rstd) {
  LayerNormParams p;
  p.x = x.data_ptr();
  p.gamma = gamma.data_ptr<float>();
  p.mean = mean.data_ptr<float>();
  p.rstd = rstd.data_ptr<float>();
  p.C = x.size(-1);
  p.rows = x.numel() / p.C;
  return p;
}

// The forward of both autograd functions: y = LayerNorm(x + res) in out_dtype (res undefined:
// no residual), x + res written to `sum`; or with gelu, y = LayerNorm(gelu(x)). Saves what the
// backward needs.
at::Tensor ln_forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
                      const at::Tensor& res_in, const at::Tensor& sum, const at::Tensor& weight,
                      const at::Tensor& bias, double eps, at::ScalarType out_dtype,
                      bool gelu = false) {
  c10::cuda::CUDAGuard guard(x_in.device());
  auto x = kernel_ready(x_in);
  auto f32 = x.options().dtype(at::kFloat);
  auto gamma = kernel_ready(weight.to(at::kFloat)), beta = kernel_ready(bias.to(at::kFloat));
  auto y = at::empty(x.sizes(), x.options().dtype(out_dtype));
  const int64_t rows = x.numel() / x.size(-1);
  auto mean = at::empty({rows}, f32), rstd = at::empty({rows}, f32);
  LayerNormParams p = ln_params(x, gamma, mean, rstd);
  p.y = y.data_ptr();
  p.beta = beta.data_ptr<float>();
  p.eps = static_cast<float>(eps);
  at::Tensor res, act;  // act: gelu(x), the backward's x
  if (gelu) {
    act = at::empty_like(x);
    p.gelu_out = act.data_ptr();
    TORCH_INTERNAL_ASSERT(kernel_aligned16(act));
  }
  if (res_in.defined()) {
    res = kernel_ready(res_in);
    p.res = res.data_ptr();
    p.sum = sum.data_ptr();
    TORCH_INTERNAL_ASSERT(kernel_aligned16(res) && kernel_aligned16(sum) && sum.is_contiguous());
  }
  TORCH_INTERNAL_ASSERT(kernel_aligned16(x) && kernel_aligned16(y) && kernel_aligned16(gamma) &&
                        kernel_aligned16(beta));
  layer_norm_forward_launch(p, kernel_dtype_code(x.scalar_type(), "LayerNorm"),
                            kernel_dtype_code(out_dtype, "LayerNorm"),
                            at::cuda::getCurrentCUDAStream().stream());
  ctx->save_for_backward({res.defined() ? sum
                          : gelu        ? act
                                        : x,
                          gamma, mean, rstd, gelu ? x : at::Tensor()});
  ctx->saved_data["weight_dtype"] = weight.scalar_type();
  ctx->saved_data["bias_dtype"] = bias.scalar_type();
  ctx->saved_data["out_dtype"] = out_dtype;
  return y;
}

// The backward of both: {dx, dres (if with_res), dgamma, dbeta} from the output's gradient dy
// (undefined: zero) and, with a residual, the sum's gradient dsum (undefined: zero).
std::vector<at::Tensor> ln_backward(torch::autograd::AutogradContext* ctx, const at::Tensor& dy_in,
                                    const at::Tensor& dsum_in, bool with_res) {
  auto saved = ctx->get_saved_variables();
  const auto& x = saved[0];
  c10::cuda::CUDAGuard guard(x.device());
  const auto out_dtype = ctx->saved_data["out_dtype"].toScalarType();
  TORCH_CHECK(!at::GradMode::is_enabled(),
              "the fused LayerNorm has no double backward (create_graph=True); run the module "
              "on the CPU or without the fused kernel for higher-order gradients");
  auto dy = kernel_ready(dy_in.defined() ? dy_in.to(out_dtype)
                                         : at::zeros(x.sizes(), x.options().dtype(out_dtype)));
  const int64_t C = x.size(-1), rows = x.numel() / C;
  const int64_t chunks = layer_norm_row_chunks(rows, C);
  auto dx = at::empty_like(x);
  // The kernels write every partial row; with no rows they do not run and the sums must be 0.
  auto f32 = x.options().dtype(at::kFloat);
  auto part_g = rows > 0 ? at::empty({chunks, C}, f32) : at::zeros({chunks, C}, f32),
       part_b = rows > 0 ? at::empty({chunks, C}, f32) : at::zeros({chunks, C}, f32);
  LayerNormParams p = ln_params(x, saved[1], saved[2], saved[3]);
  p.dy = dy.data_ptr();
  p.dx = dx.data_ptr();
  p.dgamma_part = part_g.data_ptr<float>();
  p.dbeta_part = part_b.data_ptr<float>();
  p.row_chunks = chunks;
  if (saved[4].defined()) p.gelu_in = saved[4].data_ptr();
  at::Tensor dsum, dres;
  if (with_res) {
    dres = at::empty(x.sizes(), x.options().dtype(out_dtype));
    p.dres = dres.data_ptr();
    if (dsum_in.defined()) {
      dsum = kernel_ready(dsum_in.to(x.scalar_type()));
      p.dsum = dsum.data_ptr();
      TORCH_INTERNAL_ASSERT(kernel_aligned16(dsum));
    }
    TORCH_INTERNAL_ASSERT(kernel_aligned16(dres));
  }
  TORCH_INTERNAL_ASSERT(kernel_aligned16(dy) && kernel_aligned16(dx));
  layer_norm_backward_launch(p, kernel_dtype_code(x.scalar_type(), "LayerNorm"),
                             kernel_dtype_code(out_dtype, "LayerNorm"),
                             at::cuda::getCurrentCUDAStream().stream());
  auto dgamma = part_g.sum(0).to(ctx->saved_data["weight_dtype"].toScalarType());
  auto dbeta = part_b.sum(0).to(ctx->saved_data["bias_dtype"].toScalarType());
  if (with_res) return {dx, dres, dgamma, dbeta};
  return {dx, dgamma, dbeta};
}

// LayerNorm(x), or with gelu LayerNorm(gelu(x)): then the forward kernel applies the GELU as it
// reads x (and writes gelu(x) for the backward), and the GELU's gradient is taken in the
// LayerNorm's backward kernel.
class FusedLayerNormFunction : public torch::autograd::Function<FusedLayerNormFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias, double eps,
                            at::ScalarType out_dtype, bool gelu) {
    return ln_forward(ctx, x, {}, {}, weight, bias, eps, out_dtype, gelu);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto g = ln_backward(ctx, grads[0], at::Tensor(), false);
    return {g[0], g[1], g[2], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// (x + res, LayerNorm(x + res)) in one kernel each way.
class FusedAddLayerNormFunction : public torch::autograd::Function<FusedAddLayerNormFunction> {
 public:
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx,
                                              const at::Tensor& x, const at::Tensor& res,
                                              const at::Tensor& weight, const at::Tensor& bias,
                                              double eps, at::ScalarType out_dtype) {
    ctx->set_materialize_grads(false);  // an unused sum (the last layer's) gets no zeros
    auto sum = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
    auto y = ln_forward(ctx, x, res, sum, weight, bias, eps, out_dtype);
    return {sum, y};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto g = ln_backward(ctx, grads[1], grads[0], true);
    return {g[0], g[1], g[2], g[3], at::Tensor(), at::Tensor()};
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
  return FusedLayerNormFunction::apply(x, weight, bias, eps, out_dtype, false);
#else
  TORCH_CHECK(false, "fused LayerNorm: built without CUDA");
#endif
}

namespace {
// The dtype the fused kernel writes for input x: autocast's when autocast is on, else x's.
at::ScalarType fused_out_dtype(const at::Tensor& x) {
  const auto dev = x.device().type();
  return at::autocast::is_autocast_enabled(dev) ? at::autocast::get_autocast_dtype(dev)
                                                : x.scalar_type();
}
}  // namespace

at::Tensor layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& x) {
  const auto& o = norm->options;
  if (o.normalized_shape().size() != 1 || !layer_norm_fused_supported(x, norm->weight, norm->bias))
    return norm(x);
  return layer_norm_fused(x, norm->weight, norm->bias, o.eps(), fused_out_dtype(x));
}

bool add_layer_norm_fused_supported(const at::Tensor& x, const at::Tensor& res,
                                    const at::Tensor& weight, const at::Tensor& bias,
                                    at::ScalarType out_dtype) {
  return layer_norm_fused_supported(x, weight, bias) && fused_dtype(out_dtype) &&
         x.size(-1) <= kLayerNormMaxCachedC && res.sizes() == x.sizes() &&
         res.device() == x.device() && res.scalar_type() == out_dtype &&
         at::result_type(x, res) == x.scalar_type();
}

std::array<at::Tensor, 2> add_layer_norm_fused(const at::Tensor& x, const at::Tensor& res,
                                               const at::Tensor& weight, const at::Tensor& bias,
                                               double eps, at::ScalarType out_dtype) {
  TORCH_CHECK(add_layer_norm_fused_supported(x, res, weight, bias, out_dtype),
              "fused add + LayerNorm: needs what the fused LayerNorm needs, a last dimension of at "
              "most ",
              kLayerNormMaxCachedC, ", and res of x's shape in the output dtype (", out_dtype,
              "); got x ", x.sizes(), " ", x.scalar_type(), " and res ", res.sizes(), " ",
              res.scalar_type());
#ifdef LONGNET_WITH_CUDA
  auto r = FusedAddLayerNormFunction::apply(x, res, weight, bias, eps, out_dtype);
  return {r[0], r[1]};
#else
  TORCH_CHECK(false, "fused add + LayerNorm: built without CUDA");
#endif
}

std::array<at::Tensor, 2> add_layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& x,
                                               const at::Tensor& res) {
  const auto& o = norm->options;
  if (o.normalized_shape().size() == 1 &&
      add_layer_norm_fused_supported(x, res, norm->weight, norm->bias, fused_out_dtype(x)))
    return add_layer_norm_fused(x, res, norm->weight, norm->bias, o.eps(), fused_out_dtype(x));
  auto sum = x + res;
  return {sum, layer_norm_apply(norm, sum)};
}

bool gelu_layer_norm_fused_supported(const at::Tensor& h, const at::Tensor& weight,
                                     const at::Tensor& bias) {
  return layer_norm_fused_supported(h, weight, bias) && h.size(-1) <= kLayerNormMaxCachedC;
}

at::Tensor gelu_layer_norm_fused(const at::Tensor& h, const at::Tensor& weight,
                                 const at::Tensor& bias, double eps, at::ScalarType out_dtype) {
  TORCH_CHECK(gelu_layer_norm_fused_supported(h, weight, bias) && fused_dtype(out_dtype),
              "fused GELU + LayerNorm: needs what the fused LayerNorm needs and a last dimension "
              "of at most ",
              kLayerNormMaxCachedC, "; got h ", h.sizes(), " ", h.scalar_type(), " on ",
              h.device());
#ifdef LONGNET_WITH_CUDA
  return FusedLayerNormFunction::apply(h, weight, bias, eps, out_dtype, true);
#else
  TORCH_CHECK(false, "fused GELU + LayerNorm: built without CUDA");
#endif
}

at::Tensor gelu_layer_norm_apply(torch::nn::LayerNorm& norm, const at::Tensor& h) {
  const auto& o = norm->options;
  if (o.normalized_shape().size() == 1 &&
      gelu_layer_norm_fused_supported(h, norm->weight, norm->bias))
    return gelu_layer_norm_fused(h, norm->weight, norm->bias, o.eps(), fused_out_dtype(h));
  return layer_norm_apply(norm, at::gelu(h));
}

}  // namespace longnet
