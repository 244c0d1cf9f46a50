// Registers longnet's ops with the PyTorch dispatcher, so Python users get them as
// torch.ops.longnet.* after torch.ops.load_library("build/liblongnet_ops.so"). The op is
// CompositeImplicitAutograd: its body is longnet's own autograd function, on CPU and CUDA.
// dropout_p applies whenever it is > 0 (an op has no training flag: callers pass 0 in eval); the
// masks come from the default generator, so torch.manual_seed makes them reproducible. Bad
// arguments raise ValueError naming the argument (core's OptionsError is a std::invalid_argument);
// double backward raises RuntimeError saying it is not supported; symbolic (dynamic) shapes raise
// NotImplementedError.
#include <ATen/core/grad_mode.h>
#include <torch/library.h>

#include "longnet/core/dilated_attention.h"

namespace {

at::Tensor dilated_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                c10::IntArrayRef segment_lengths, c10::IntArrayRef dilation_rates,
                                bool is_causal, std::optional<double> softmax_scale,
                                double dropout_p) {
  // Tracing with symbolic sizes (torch.export's dynamic_shapes, opcheck's dynamic test) reaches
  // here with tensors whose sizes are not numbers; the plan needs numbers.
  // (A jagged nested tensor has symbolic sizes too: it is refused below as not dense.)
  for (const at::Tensor* t : {&q, &k, &v})
    TORCH_CHECK_NOT_IMPLEMENTED(
        t->is_nested() || !t->unsafeGetTensorImpl()->has_symbolic_sizes_strides(),
        "longnet::dilated_attention: inputs with symbolic (dynamic) shapes are not supported; "
        "trace or export with static shapes (torch.export without dynamic_shapes)");
  // Traced for training by torch.compile (fake or functional tensors that need gradients): its
  // C++ body, compiled by inductor, gave wrong gradients (the forward was right). Refused with
  // NotImplementedError, on which Dynamo ends its graph and runs the op eagerly (exact); the
  // package (longnet.load_library) keeps the op out of compiled graphs before this is reached.
  // torch.export traces the same way: a module with parameters exports under torch.no_grad().
  bool traced = false;
  for (const at::Tensor* t : {&q, &k, &v})
    traced |= t->key_set().has(c10::DispatchKey::Python) ||
              t->key_set().has(c10::DispatchKey::Functionalize);
  TORCH_CHECK_NOT_IMPLEMENTED(
      !traced || !at::GradMode::is_enabled() ||
          !(q.requires_grad() || k.requires_grad() || v.requires_grad()),
      "longnet::dilated_attention is not traced with gradients (inductor compiled its traced "
      "C++ body to wrong gradients): under torch.compile it runs eagerly instead (a graph break; "
      "longnet.load_library() marks it so from the start); torch.export it under "
      "torch.no_grad() (parameters need gradients otherwise)");
  longnet::DilatedAttentionOptions o;
  o.segment_lengths = segment_lengths.vec();
  o.dilation_rates = dilation_rates.vec();
  o.is_causal = is_causal;
  o.softmax_scale = softmax_scale;
  TORCH_CHECK_VALUE(dropout_p >= 0.0 && dropout_p < 1.0,
                    "longnet::dilated_attention: dropout_p must be in [0, 1), got ", dropout_p);
  o.dropout = dropout_p;
  return longnet::dilated_attention(q, k, v, o);
}

}  // namespace

TORCH_LIBRARY(longnet, m) {
  m.def(
      "dilated_attention(Tensor q, Tensor k, Tensor v, int[] segment_lengths, "
      "int[] dilation_rates, bool is_causal=False, float? softmax_scale=None, "
      "float dropout_p=0.0) -> Tensor",
      {at::Tag::nondeterministic_seeded});  // (dropout draws from the default generator)
}

TORCH_LIBRARY_IMPL(longnet, CompositeImplicitAutograd, m) {
  m.impl("dilated_attention", &dilated_attention_op);
}
