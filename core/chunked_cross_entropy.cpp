// Chunked linear + cross-entropy (see chunked_cross_entropy.h): an autograd Function whose
// forward saves the inputs and one log-sum-exp per row, and whose backward recomputes each
// chunk's logits, forms softmax - onehot in float32, and takes the three gradients from it. The
// per-row statistics and softmax - onehot are ATen expressions in float32; on the GPU they are
// to become one kernel each (cross_entropy_kernel.h, written, awaiting its GPU tests: below).
#include "longnet/core/chunked_cross_entropy.h"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cstdint>

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include <c10/cuda/CUDAGuard.h>

#include "longnet/core/cross_entropy_kernel.h"
#include "longnet/core/kernel_dtype.h"
#endif

namespace longnet {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Outside autocast: the dtypes below are the ones chosen here, whatever the caller's state.
struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

at::ScalarType accumulate_dtype(at::ScalarType compute) {
  return compute == at::kDouble ? at::kDouble : at::kFloat;
}

// logits of rows [r0, r0 + n): (n, V) in the compute dtype.
at::Tensor chunk_logits(const at::Tensor& hidden, const at::Tensor& w, const at::Tensor& b,
                        int64_t r0, int64_t n, at::ScalarType compute) {
  auto h = hidden.narrow(0, r0, n).to(compute);  // (n, d)
  return b.defined() ? at::addmm(b, h, w.t()) : at::mm(h, w.t());
}

#ifdef LONGNET_WITH_CUDA
bool row_kernels(bool wanted, const at::Tensor& logits, const at::Tensor& lse) {
  return wanted && logits.is_cuda() && lse.scalar_type() == at::kFloat &&
         logits.size(0) <= INT32_MAX;
}
#endif

// Per row of a chunk's logits (n, V) in the compute dtype: its log-sum-exp, written to lse (n)
// (the accumulate dtype), and its loss lse - logit of the target, returned (n).
at::Tensor rows_forward(const at::Tensor& logits, const at::Tensor& targets, at::Tensor lse,
                        [[maybe_unused]] bool kernels) {
#ifdef LONGNET_WITH_CUDA
  if (row_kernels(kernels, logits, lse)) {
    c10::cuda::CUDAGuard device(logits.device());
    auto x = logits.contiguous();
    auto tg = targets.contiguous();
    auto loss = at::empty_like(lse);
    CrossEntropyRowsParams p;
    p.logits = x.data_ptr();
    p.targets = tg.data_ptr<int64_t>();
    p.lse = lse.data_ptr<float>();
    p.loss = loss.data_ptr<float>();
    p.rows = x.size(0);
    p.V = x.size(1);
    cross_entropy_rows_forward_launch(p, kernel_dtype_code(x.scalar_type(), "cross-entropy"),
                                      at::cuda::getCurrentCUDAStream().stream());
    return loss;
  }
#endif
  auto xf = logits.to(lse.scalar_type());
  lse.copy_(at::logsumexp(xf, {1}));
  return lse - xf.gather(1, targets.unsqueeze(1)).squeeze(1);
}

// d loss / d logits = scale * (softmax - onehot(target)) of a chunk's logits (n, V), formed in
// the accumulate dtype of lse (n) and returned in the logits' dtype (in place on the GPU).
at::Tensor rows_backward(at::Tensor logits, const at::Tensor& targets, const at::Tensor& lse,
                         const at::Tensor& scale, [[maybe_unused]] bool kernels) {
#ifdef LONGNET_WITH_CUDA
  if (row_kernels(kernels, logits, lse)) {
    c10::cuda::CUDAGuard device(logits.device());
    auto x = logits.contiguous();
    auto tg = targets.contiguous();
    auto sc = scale.to(at::kFloat).contiguous();  // a 0-dim tensor on the device
    auto l = lse.contiguous();
    CrossEntropyRowsParams p;
    p.logits = x.data_ptr();
    p.targets = tg.data_ptr<int64_t>();
    p.lse = l.data_ptr<float>();
    p.scale = sc.data_ptr<float>();
    p.rows = x.size(0);
    p.V = x.size(1);
    cross_entropy_rows_backward_launch(p, kernel_dtype_code(x.scalar_type(), "cross-entropy"),
                                       at::cuda::getCurrentCUDAStream().stream());
    return x;
  }
#endif
  auto p = (logits.to(lse.scalar_type()) - lse.unsqueeze(1)).exp_();  // softmax
  p.scatter_add_(1, targets.unsqueeze(1), at::full({p.size(0), 1}, -1.0, p.options()));
  return p.mul_(scale).to(logits.scalar_type());
}

class LinearCrossEntropy : public torch::autograd::Function<LinearCrossEntropy> {
 public:
  // hidden (R, d), weight (V, d), bias_in (V) or (0) for none (Function::apply takes no
  // undefined tensors), targets (R) int64.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& hidden,
                            const at::Tensor& weight, const at::Tensor& bias_in,
                            const at::Tensor& targets, int64_t chunk_rows, bool sum,
                            int64_t compute, bool kernels) {
    NoAutocast no_autocast;
    const at::Tensor bias = bias_in.numel() ? bias_in : at::Tensor();
    const auto ct = static_cast<at::ScalarType>(compute);
    const auto acc = accumulate_dtype(ct);
    const int64_t R = hidden.size(0);
    auto w = weight.to(ct);                                // (V, d)
    auto b = bias.defined() ? bias.to(ct) : at::Tensor();  // (V)
    auto lse = at::empty({R}, hidden.options().dtype(acc));
    auto losses = at::empty({R}, lse.options());
    for (int64_t r0 = 0; r0 < R; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, R - r0);
      losses.narrow(0, r0, n).copy_(rows_forward(chunk_logits(hidden, w, b, r0, n, ct),
                                                 targets.narrow(0, r0, n), lse.narrow(0, r0, n),
                                                 kernels));
    }
    auto total = losses.sum();
    ctx->save_for_backward({hidden, weight, bias_in, targets, lse});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["sum"] = sum;
    ctx->saved_data["compute"] = compute;
    ctx->saved_data["kernels"] = kernels;
    return sum ? total : total / double(R);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast;
    auto saved = ctx->get_saved_variables();
    const auto &hidden = saved[0], &weight = saved[1], &targets = saved[3], &lse = saved[4];
    const at::Tensor bias = saved[2].numel() ? saved[2] : at::Tensor();
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const bool sum = ctx->saved_data["sum"].toBool();
    const auto ct = static_cast<at::ScalarType>(ctx->saved_data["compute"].toInt());
    const bool kernels = ctx->saved_data["kernels"].toBool();
    const auto acc = accumulate_dtype(ct);
    const int64_t R = hidden.size(0);
    // d loss / d logits = scale * (softmax - onehot), scale the incoming gradient (over R for
    // the mean), a 0-dim tensor: no host synchronisation.
    auto scale = grads[0].to(acc);
    if (!sum) scale = scale / double(R);
    const bool need_h = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1),
               need_b = bias.defined() && ctx->needs_input_grad(2);
    auto w = weight.to(ct);
    auto b = bias.defined() ? bias.to(ct) : at::Tensor();
    at::Tensor grad_h = need_h ? at::empty_like(hidden) : at::Tensor();
    at::Tensor grad_w =
        need_w ? at::zeros(weight.sizes(), weight.options().dtype(acc)) : at::Tensor();  // (V, d)
    at::Tensor grad_b =
        need_b ? at::zeros(bias.sizes(), bias.options().dtype(acc)) : at::Tensor();  // (V)
    for (int64_t r0 = 0; r0 < R; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, R - r0);
      auto d = rows_backward(chunk_logits(hidden, w, b, r0, n, ct), targets.narrow(0, r0, n),
                             lse.narrow(0, r0, n), scale, kernels);  // (n, V)
      if (need_h) grad_h.narrow(0, r0, n).copy_(at::mm(d, w));
      if (need_w) grad_w.add_(at::mm(d.t(), hidden.narrow(0, r0, n).to(ct)));
      if (need_b) grad_b.add_(d.sum(0, /*keepdim=*/false, acc));
    }
    return {grad_h,
            need_w ? grad_w.to(weight.scalar_type()) : at::Tensor(),
            need_b ? grad_b.to(bias.scalar_type()) : at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

void inputs_check(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& bias,
                  const at::Tensor& targets, const ChunkedCrossEntropyOptions& o) {
  TORCH_CHECK(hidden.dim() >= 1 && at::isFloatingType(hidden.scalar_type()),
              "linear_cross_entropy: hidden must be a floating tensor (..., d); got ",
              hidden.sizes(), " ", hidden.scalar_type());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(-1),
              "linear_cross_entropy: weight must be (V, d) with d = ", hidden.size(-1), "; got ",
              weight.sizes());
  TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
              "linear_cross_entropy: bias must be (V) with V = ", weight.size(0), "; got ",
              bias.sizes());
  TORCH_CHECK(targets.scalar_type() == at::kLong &&
                  targets.sizes() == hidden.sizes().slice(0, hidden.dim() - 1),
              "linear_cross_entropy: targets must be int64 of shape ",
              hidden.sizes().slice(0, hidden.dim() - 1), "; got ", targets.sizes(), " ",
              targets.scalar_type());
  TORCH_CHECK(weight.device() == hidden.device() && targets.device() == hidden.device() &&
                  (!bias.defined() || bias.device() == hidden.device()),
              "linear_cross_entropy: hidden, weight, bias and targets must be on one device");
  TORCH_CHECK(o.chunk_rows >= 1, "linear_cross_entropy: chunk_rows must be >= 1, got ",
              o.chunk_rows);
  TORCH_CHECK(hidden.numel() > 0, "linear_cross_entropy: no rows");
}

}  // namespace

at::Tensor linear_cross_entropy_chunked(const at::Tensor& hidden, const at::Tensor& weight,
                                        const at::Tensor& bias, const at::Tensor& targets,
                                        const ChunkedCrossEntropyOptions& o) {
  inputs_check(hidden, weight, bias, targets, o);
  const auto ct = o.compute_dtype.value_or(hidden.scalar_type());
  auto h = hidden.reshape({-1, hidden.size(-1)});  // (R, d)
  const at::Tensor no_bias = at::empty({0}, weight.options());
  return LinearCrossEntropy::apply(h, weight, bias.defined() ? bias : no_bias,
                                   targets.reshape({-1}), o.chunk_rows, o.sum,
                                   static_cast<int64_t>(ct), o.row_kernels);
}

at::Tensor linear_cross_entropy_plain(const at::Tensor& hidden, const at::Tensor& weight,
                                      const at::Tensor& bias, const at::Tensor& targets,
                                      const ChunkedCrossEntropyOptions& o) {
  inputs_check(hidden, weight, bias, targets, o);
  NoAutocast no_autocast;
  const auto ct = o.compute_dtype.value_or(hidden.scalar_type());
  auto logits = at::linear(hidden.to(ct), weight.to(ct),
                           bias.defined() ? bias.to(ct) : at::Tensor());  // (..., V)
  auto lf = logits.reshape({-1, logits.size(-1)}).to(accumulate_dtype(ct));
  return at::cross_entropy_loss(lf, targets.reshape({-1}), {},
                                o.sum ? at::Reduction::Sum : at::Reduction::Mean);
}

int64_t cross_entropy_chunk_rows(int64_t vocab_size, int64_t bytes) {
  return std::max<int64_t>(1, bytes / (4 * std::max<int64_t>(1, vocab_size)));
}

}  // namespace longnet
