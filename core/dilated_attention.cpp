// Dilated attention: input checks, the choice of engine, the autograd function and the module
// (see dilated_attention.h).
#include "longnet/core/dilated_attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdint>

namespace longnet {

namespace {
// Every (B, N, H, D) tensor the views are taken of is contiguous, so that for one geometry the
// views of q, k, v, out and dout have identical strides. cuDNN's graph cache is keyed by the q,
// k, v strides only and bakes in the first out / dout layout it sees for a key.
at::Tensor rowmajor(const at::Tensor& x) {
  return x.contiguous();
}

// v alone may stay a strided view on the GPU (typically of one fused q/k/v projection), with
// dense heads, rows and batches 16-byte aligned: only the q, k, v layouts enter cuDNN's graph
// cache key, and out and dout keep following q's row-major layout, so no key sees two output
// layouts. (Spares one copy of v per layer in each pass.)
at::Tensor value_rows(const at::Tensor& v) {
  const int64_t align = 16 / v.element_size();
  const bool ok = v.is_cuda() && v.dim() == 4 && v.stride(3) == 1 && v.stride(2) == v.size(3) &&
                  v.stride(1) >= v.size(2) * v.size(3) && v.stride(0) >= v.size(1) * v.stride(1) &&
                  v.stride(1) % align == 0 && v.stride(0) % align == 0 &&
                  reinterpret_cast<uintptr_t>(v.data_ptr()) % 16 == 0;
  return ok ? v : v.contiguous();
}

// GPU tensors merge with the fused kernel (dilated_merge.h) unless the engine says otherwise.
bool use_fused(const at::Tensor& q, const DilatedAttentionOptions& o) {
  return q.is_cuda() && o.engine.fused_merge;
}
}  // namespace

void dilated_inputs_check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const DilatedAttentionOptions& o) {
  dilated_options_check(o);
  for (const auto* t : {&q, &k, &v})
    TORCH_CHECK(!t->is_nested() && t->layout() == at::kStrided,
                "dilated attention: query, key and value must be dense (strided) tensors, got ",
                t->is_nested() ? std::string("a nested tensor") : c10::str(t->layout()),
                "; pass padded dense tensors (e.g. nested.to_padded_tensor(0.0), or .to_dense())");
  TORCH_CHECK(q.dim() == 4,
              "dilated attention: query must be (batch, seq_len, heads, head_dim), "
              "got ",
              q.dim(), " dims with shape ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes(),
              "dilated attention: query, key "
              "and value must have the same shape, got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "dilated attention: query, key and value must have the same dtype, got ",
              q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(),
              "dilated attention: query, "
              "key and value must be on the same device, got ",
              q.device(), ", ", k.device(), ", ", v.device());
  const auto t = q.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf,
              "dilated attention: inputs must be float32, float64 (CPU), bfloat16 or float16, got ",
              t, at::isFloatingType(t) ? " (convert them, e.g. .to(torch.bfloat16))" : "");
  TORCH_CHECK(q.size(0) >= 1 && q.size(1) >= 1 && q.size(2) >= 1 && q.size(3) >= 1,
              "dilated attention: every dimension must be >= 1, got shape ", q.sizes());
  if (q.is_cuda()) {
    TORCH_CHECK(q.scalar_type() != at::kDouble,
                "dilated attention: float64 runs on the CPU "
                "only; use float32, bfloat16 or float16 on the GPU");
    TORCH_CHECK(q.size(3) % 8 == 0 && q.size(3) <= 256, "dilated attention: head_dim ", q.size(3),
                " is not supported by the GPU kernels; use a multiple of 8, at most "
                "256");
  }
}

namespace {
// The forward of checked inputs, q and k row-major, v as value_rows leaves it.
DilatedForward forward_checked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const DilatedAttentionOptions& o) {
  if (use_fused(q, o)) return dilated_fused_forward(q, k, v, o, dilated_chunk_elements(q, o));
  return dilated_plain_forward(q, k, v, o);
}
}  // namespace

DilatedForward dilated_attention_forward(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const DilatedAttentionOptions& o) {
  dilated_inputs_check(q, k, v, o);
  return forward_checked(rowmajor(q), rowmajor(k), value_rows(v), o);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_attention_backward(
    const at::Tensor& dout_in, const at::Tensor& q_in, const at::Tensor& k_in,
    const at::Tensor& v_in, const at::Tensor& out_in, const at::Tensor& lse,
    const std::vector<at::Tensor>& rng, const DilatedAttentionOptions& o,
    const std::vector<at::Tensor>& lse_parts, bool packed) {
  auto q = rowmajor(q_in), k = rowmajor(k_in), v = value_rows(v_in);
  auto dout = rowmajor(dout_in.to(q.scalar_type())), out = rowmajor(out_in);
  const size_t problems = dilated_plan(q.size(0), q.size(1), q.size(2), o).size();
  TORCH_INTERNAL_ASSERT(rng.empty() || rng.size() == problems,
                        "dilated attention backward: ", rng.size(), " dropout states for ",
                        problems, " problems");
  TORCH_INTERNAL_ASSERT(lse_parts.empty() || lse_parts.size() == problems,
                        "dilated attention backward: ", lse_parts.size(),
                        " per-problem lse tensors for ", problems, " problems");
  if (use_fused(q, o))
    return dilated_fused_backward(dout, q, k, v, out, lse, rng, o, lse_parts, packed);
  return dilated_plain_backward(dout, q, k, v, out, lse, rng, o);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class DilatedAttentionFunction : public torch::autograd::Function<DilatedAttentionFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, const DilatedAttentionOptions& o) {
    // The row-major copies are what both passes read: saving them (not the inputs, often views
    // of one q/k/v projection) spares the backward a second copy. (v may stay a view.)
    auto q = rowmajor(q_in), k = rowmajor(k_in), v = value_rows(v_in);
    auto f = forward_checked(q, k, v, o);  // (dilated_attention checked the inputs)
    std::vector<at::Tensor> save{q, k, v, f.out, f.lse};
    save.insert(save.end(), f.lse_parts.begin(), f.lse_parts.end());
    ctx->save_for_backward(save);
    dilated_ctx_save(ctx, o, q.size(3), f.rng);
    // Gradients packed as slices of one (B, N, 3, H, D) tensor when an input is a view (a fused
    // q/k/v projection's: its xPos function, xpos.h, then takes them without a copy); separate
    // contiguous inputs (leaves, say) get contiguous gradients, which autograd's accumulation
    // into .grad takes as they are instead of copying slices into the leaves' layout.
    ctx->saved_data["packed"] =
        !(q_in.is_contiguous() && k_in.is_contiguous() && v_in.is_contiguous());
    return f.out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    dilated_double_backward_check();
    auto saved = ctx->get_saved_variables();
    auto o = dilated_ctx_options(ctx);
    auto rng = dilated_ctx_rng(ctx);
    const std::vector<at::Tensor> lse_parts(saved.begin() + 5, saved.end());
    auto [dq, dk, dv] =
        dilated_attention_backward(grads[0], saved[0], saved[1], saved[2], saved[3], saved[4], rng,
                                   o, lse_parts, ctx->saved_data["packed"].toBool());
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

void dilated_double_backward_check() {
  // The engine runs a backward in grad mode only when asked to build a graph of it
  // (create_graph=True): that is the one way a gradient of this backward could be requested.
  TORCH_CHECK(!at::GradMode::is_enabled(),
              "dilated attention: double backward is not supported (a gradient of its gradient: "
              "backward or torch.autograd.grad with create_graph=True through it). Take first "
              "derivatives only, or compute the higher-order term another way");
}

void dilated_ctx_save(AutogradContext* ctx, const DilatedAttentionOptions& o, int64_t head_dim,
                      const std::vector<at::Tensor>& rng) {
  ctx->saved_data["segment_lengths"] = o.segment_lengths;
  ctx->saved_data["dilation_rates"] = o.dilation_rates;
  ctx->saved_data["is_causal"] = o.is_causal;
  ctx->saved_data["scale"] = dilated_scale(o, head_dim);
  ctx->saved_data["dropout"] = o.dropout;
  ctx->saved_data["engine.backend"] = o.engine.backend;
  ctx->saved_data["engine.streams"] = o.engine.streams;
  ctx->saved_data["engine.fused_merge"] = o.engine.fused_merge;
  ctx->saved_data["engine.memory_trace"] = o.engine.memory_trace;
  if (!rng.empty()) ctx->saved_data["rng"] = c10::List<at::Tensor>(rng);
}

DilatedAttentionOptions dilated_ctx_options(AutogradContext* ctx) {
  DilatedAttentionOptions o;
  o.segment_lengths = ctx->saved_data["segment_lengths"].toIntVector();
  o.dilation_rates = ctx->saved_data["dilation_rates"].toIntVector();
  o.is_causal = ctx->saved_data["is_causal"].toBool();
  o.softmax_scale = ctx->saved_data["scale"].toDouble();
  o.dropout = ctx->saved_data["dropout"].toDouble();
  o.engine.backend = ctx->saved_data["engine.backend"].toStringRef();
  o.engine.streams = ctx->saved_data["engine.streams"].toInt();
  o.engine.fused_merge = ctx->saved_data["engine.fused_merge"].toBool();
  o.engine.memory_trace = ctx->saved_data["engine.memory_trace"].toBool();
  return o;
}

std::vector<at::Tensor> dilated_ctx_rng(AutogradContext* ctx) {
  if (!ctx->saved_data.count("rng")) return {};
  return ctx->saved_data["rng"].toTensorVector();
}

at::Tensor dilated_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const DilatedAttentionOptions& o) {
  dilated_inputs_check(q, k, v, o);
  return DilatedAttentionFunction::apply(q, k, v, o);
}

DilatedAttentionImpl::DilatedAttentionImpl(DilatedAttentionOptions options)
    : options_(std::move(options)) {
  dilated_options_check(options_);
}

DilatedAttentionImpl::DilatedAttentionImpl(std::vector<int64_t> segment_lengths,
                                           std::vector<int64_t> dilation_rates,
                                           std::optional<double> softmax_scale,
                                           double attention_dropout) {
  options_.segment_lengths = std::move(segment_lengths);
  options_.dilation_rates = std::move(dilation_rates);
  options_.softmax_scale = softmax_scale;
  options_.dropout = attention_dropout;
  dilated_options_check(options_);
}

at::Tensor DilatedAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key,
                                         const at::Tensor& value, bool is_causal) {
  DilatedAttentionOptions o = options_;
  o.is_causal = is_causal;
  if (!is_training()) o.dropout = 0.0;
  return dilated_attention(query, key, value, o);
}

}  // namespace longnet
