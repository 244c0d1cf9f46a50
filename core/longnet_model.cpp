// MAGNETO layers, LongNet and LongNetLM. Init follows MAGNETO: xavier_normal_ with gain gamma for
// v_proj, out_proj, linear1, linear2 (gain 1 for q_proj, k_proj and cross-attention), biases 0.
#include "longnet/core/longnet_model.h"

#include "longnet/core/activation_checkpoint.h"
#include "longnet/core/layer_norm.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace longnet {

namespace {

at::Tensor activation_apply(const at::Tensor& x, bool gelu) {
  return gelu ? at::gelu(x) : at::relu(x);
}

torch::nn::LayerNorm layer_norm_make(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps));
}

// Cross-attention, as MAGNETO's: no sub-LN, gain 1.
MultiheadDilatedAttention cross_attention_make(LayerOptions o) {
  o.gamma_init = 1.0;
  return MultiheadDilatedAttention(o, /*sub_layer_norm=*/false);
}

// The FFN's modules in forward order: pre-norm (d_model), linear1 (d_model -> F), sub-LN (F),
// linear2 (F -> d_model); MAGNETO gain on the linears, zero biases.
void ffn_make(torch::nn::Module& m, const LayerOptions& o, const std::string& pre_name,
              const std::string& sub_name, torch::nn::LayerNorm& pre, torch::nn::Linear& linear1,
              torch::nn::LayerNorm& sub, torch::nn::Linear& linear2) {
  pre = m.register_module(pre_name, layer_norm_make(o.d_model, o.layer_norm_eps));
  linear1 = m.register_module("linear1", torch::nn::Linear(o.d_model, o.dim_feedforward));
  sub = m.register_module(sub_name, layer_norm_make(o.dim_feedforward, o.layer_norm_eps));
  linear2 = m.register_module("linear2", torch::nn::Linear(o.dim_feedforward, o.d_model));
  torch::NoGradGuard no_grad;
  for (auto* lin : {&linear1, &linear2}) {
    torch::nn::init::xavier_normal_((*lin)->weight, o.gamma_init);
    (*lin)->bias.zero_();
  }
}

// x: (B, N, d_model), already normalised by the FFN's pre-LN. linear1 -> act -> dropout ->
// sub-LN -> linear2 -> dropout. With GELU and no dropout in effect, the GELU's gradient is taken
// in the sub-LN's backward (gelu_layer_norm_apply).
at::Tensor ffn_forward(const at::Tensor& x, torch::nn::Linear& linear1, torch::nn::LayerNorm& sub,
                       torch::nn::Linear& linear2, torch::nn::Dropout& dropout, bool gelu) {
  auto a = linear_apply(linear1, x);  // (B, N, F)
  const bool no_dropout = dropout->options.p() == 0.0 || !dropout->is_training();
  auto z = gelu && no_dropout ? gelu_layer_norm_apply(sub, a)
                              : layer_norm_apply(sub, dropout(activation_apply(a, gelu)));
  return dropout(linear_apply(linear2, z));
}

}  // namespace

// ---- layers ----------------------------------------------------------------------------------

EncoderLayerImpl::EncoderLayerImpl(const LayerOptions& o) {
  layer_options_check(o);
  gelu_ = o.activation == "gelu";
  norm1 = register_module("norm1", layer_norm_make(o.d_model, o.layer_norm_eps));
  self_attn = register_module("self_attn", MultiheadDilatedAttention(o));
  ffn_make(*this, o, "norm2", "norm3", norm2, linear1, norm3, linear2);
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout));
}

at::Tensor EncoderLayerImpl::forward(const at::Tensor& x, bool is_causal,
                                     AttentionBackend& backend) {
  auto h = layer_norm_apply(norm1, x);  // (B, N_local, d_model)
  auto [y, hf] =
      add_layer_norm_apply(norm2, x, dropout(self_attn->forward(h, h, h, is_causal, backend)));
  return y + ffn_forward(hf, linear1, norm3, linear2, dropout, gelu_);
}

DecoderLayerImpl::DecoderLayerImpl(const LayerOptions& o, bool cross_attention) {
  layer_options_check(o);
  gelu_ = o.activation == "gelu";
  norm1 = register_module("norm1", layer_norm_make(o.d_model, o.layer_norm_eps));
  self_attn = register_module("self_attn", MultiheadDilatedAttention(o));
  if (cross_attention) {
    norm2 = register_module("norm2", layer_norm_make(o.d_model, o.layer_norm_eps));
    multihead_attn = register_module("multihead_attn", cross_attention_make(o));
  }
  ffn_make(*this, o, "norm3", "norm4", norm3, linear1, norm4, linear2);
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& memory,
                                     bool tgt_is_causal, bool memory_is_causal,
                                     AttentionBackend& backend) {
  TORCH_CHECK(memory.defined() == !multihead_attn.is_empty(),
              multihead_attn.is_empty()
                  ? "DecoderLayer: this layer has no cross-attention, but memory was given"
                  : "DecoderLayer: this layer cross-attends, but no memory was given");
  auto [y, f] = forward_parts(x, layer_norm_apply(norm1, x), memory, tgt_is_causal,
                              memory_is_causal, backend);
  return y + f;
}

std::array<at::Tensor, 2> DecoderLayerImpl::forward_parts(const at::Tensor& x, const at::Tensor& h,
                                                          const at::Tensor& memory,
                                                          bool tgt_is_causal, bool memory_is_causal,
                                                          AttentionBackend& backend) {
  auto sa = dropout(self_attn->forward(h, h, h, tgt_is_causal, backend));
  // {residual, its normalised rows} after each residual add
  auto yh = add_layer_norm_apply(multihead_attn ? norm2 : norm3, x, sa);
  if (multihead_attn) {
    auto ca = dropout(multihead_attn->forward(yh[1], memory, memory, memory_is_causal, backend));
    yh = add_layer_norm_apply(norm3, yh[0], ca);
  }
  return {yh[0], ffn_forward(yh[1], linear1, norm4, linear2, dropout, gelu_)};
}

// ---- MAGNETO gains ---------------------------------------------------------------------------

double magneto_encoder_gamma(int64_t num_encoder_layers, int64_t num_decoder_layers) {
  return std::sqrt(std::log(3.0 * num_decoder_layers) * std::log(2.0 * num_encoder_layers) / 3.0);
}
double magneto_decoder_gamma(int64_t num_decoder_layers) {
  return std::sqrt(std::log(3.0 * num_decoder_layers));
}
double magneto_decoder_only_gamma(int64_t num_decoder_layers) {
  return std::sqrt(std::log(2.0 * num_decoder_layers));
}

// ---- LongNet ---------------------------------------------------------------------------------

namespace {
LayerOptions with_gamma(LayerOptions o, double gamma) {
  o.gamma_init = gamma;
  return o;
}
}  // namespace

LongNetImpl::LongNetImpl(const LongNetOptions& o) {
  longnet_options_check(o);
  const auto enc =
      with_gamma(o.layer, magneto_encoder_gamma(o.num_encoder_layers, o.num_decoder_layers));
  const auto dec = with_gamma(o.layer, magneto_decoder_gamma(o.num_decoder_layers));
  encoder_layers = register_module("encoder_layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_encoder_layers; ++i) {
    encoder.push_back(EncoderLayer(enc));
    encoder_layers->push_back(encoder.back());
  }
  encoder_norm =
      register_module("encoder_norm", layer_norm_make(o.layer.d_model, o.layer.layer_norm_eps));
  decoder_layers = register_module("decoder_layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_decoder_layers; ++i) {
    decoder.push_back(DecoderLayer(dec, /*cross_attention=*/true));
    decoder_layers->push_back(decoder.back());
  }
}

at::Tensor LongNetImpl::forward(const at::Tensor& x, bool is_causal, AttentionBackend& backend) {
  auto mem = x;  // (B, N_local, d_model)
  for (auto& layer : encoder) mem = layer->forward(mem, is_causal, backend);
  mem = layer_norm_apply(encoder_norm, mem);
  auto tgt = x;
  for (auto& layer : decoder) tgt = layer->forward(tgt, mem, is_causal, is_causal, backend);
  return tgt;
}

at::Tensor LongNetImpl::forward(const at::Tensor& x, bool is_causal) {
  return forward(x, is_causal, local_);
}

// ---- LongNetLM -------------------------------------------------------------------------------

LongNetLMImpl::LongNetLMImpl(const LongNetLMOptions& o) : options_(o) {
  lm_options_check(o);
  const LayerOptions& l = o.layer;
  token_embedding =
      register_module("token_embedding", torch::nn::Embedding(o.vocab_size, l.d_model));
  if (o.variant == "decoder_only") {
    const auto dec = with_gamma(l, magneto_decoder_only_gamma(o.num_layers));
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < o.num_layers; ++i) {
      decoder.push_back(DecoderLayer(dec, /*cross_attention=*/false));
      layers->push_back(decoder.back());
    }
  } else {
    long_net =
        register_module("long_net", LongNet(LongNetOptions{o.num_encoder_layers, o.num_layers, l}));
  }
  norm = register_module("norm", layer_norm_make(l.d_model, l.layer_norm_eps));
  out = register_module("out", torch::nn::Linear(l.d_model, o.vocab_size));
  // Logits start near unit scale: the final LayerNorm gives unit-variance features.
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(out->weight, 0.0, 1.0 / std::sqrt(double(l.d_model)));
  out->bias.zero_();
}

at::Tensor LongNetLMImpl::forward(const at::Tensor& tokens, AttentionBackend& backend) {
  return linear_apply(out, forward_hidden(tokens, backend));  // (B, N_local, vocab_size)
}

at::Tensor LongNetLMImpl::forward_hidden(const at::Tensor& tokens, AttentionBackend& backend) {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong,
              "LongNetLM: tokens must be (batch, seq_len) int64; got ", tokens.sizes(), " ",
              tokens.scalar_type());
  auto x = token_embedding(tokens);  // (B, N_local, d_model)
  if (options_.variant != "decoder_only") {
    x = long_net->forward(x, /*is_causal=*/true, backend);
    return layer_norm_apply(norm, x);  // (B, N_local, d_model)
  }
  // The first `recomputed` layers run under activation checkpointing (training only)...
  size_t recomputed = 0;
  if (options_.activation_checkpointing && is_training())
    recomputed = options_.checkpoint_layers == 0
                     ? decoder.size()
                     : std::min(decoder.size(), static_cast<size_t>(options_.checkpoint_layers));
  for (size_t i = 0; i < recomputed; ++i) {
    auto& layer = decoder[i];
    auto run = [&layer, &backend](const std::vector<at::Tensor>& in) {
      return layer->forward(in[0], at::Tensor(), true, true, backend);
    };
    x = activation_checkpoint(run, {x});
  }
  if (recomputed == decoder.size()) return layer_norm_apply(norm, x);  // (B, N_local, d_model)
  // ...the others keep their activations, each closing residual add fused with the LayerNorm
  // that reads its sum (the next layer's norm1, the last layer's the final norm).
  auto h = layer_norm_apply(decoder[recomputed]->norm1, x);
  for (size_t i = recomputed; i < decoder.size(); ++i) {
    auto [y, f] = decoder[i]->forward_parts(x, h, at::Tensor(), true, true, backend);
    auto& next = i + 1 < decoder.size() ? decoder[i + 1]->norm1 : norm;
    auto r = add_layer_norm_apply(next, y, f);
    x = r[0], h = r[1];
  }
  return h;  // (B, N_local, d_model)
}

at::Tensor LongNetLMImpl::forward(const at::Tensor& tokens) {
  return forward(tokens, local_);
}

}  // namespace longnet
