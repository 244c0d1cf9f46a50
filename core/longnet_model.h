// LongNet transformer layers and models (docs/design.md section 4): MAGNETO encoder and decoder
// layers (pre-LN, sub-LN inside attention and FFN, MAGNETO init gains), the reference library's
// LongNet encoder-decoder, and LongNetLM in the paper's decoder-only form or the reference
// library's encoder-decoder form. Each layer is its own module so activation checkpointing can wrap
// it.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "longnet/core/attention_backend.h"
#include "longnet/core/multihead_dilated_attention.h"
#include "longnet/core/options.h"

namespace longnet {

// Pre-LN encoder layer with residuals:
//   x = x + dropout(self_attn(norm1(x)))                        (self_attn has its own sub-LN)
//   x = x + dropout(linear2(norm3(dropout(act(linear1(norm2(x)))))))
// (The reference library's layer drops both residual connections; MAGNETO keeps them.)
class EncoderLayerImpl : public torch::nn::Module {
 public:
  explicit EncoderLayerImpl(const LayerOptions& o);
  // x: (B, N_local, d_model) -> (B, N_local, d_model)
  at::Tensor forward(const at::Tensor& x, bool is_causal, AttentionBackend& backend);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  MultiheadDilatedAttention self_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  bool gelu_;
};
TORCH_MODULE(EncoderLayer);

// Pre-LN decoder layer: causal-capable self-attention, optional cross-attention to `memory`, FFN.
//   x = x + dropout(self_attn(norm1(x)))
//   x = x + dropout(multihead_attn(norm2(x), memory, memory))    (only with cross_attention)
//   x = x + dropout(linear2(norm4(dropout(act(linear1(norm3(x)))))))
// As MAGNETO (torchscale), cross-attention has no sub-LN and gain 1. It keeps xPos because here
// memory and queries are the same token positions (dilated attention pairs them), so their
// relative distance is meaningful.
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const LayerOptions& o, bool cross_attention);
  // x: (B, N_local, d_model); memory: (B, N_local, d_model), undefined without cross-attention.
  // Returns (B, N_local, d_model).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& memory, bool tgt_is_causal,
                     bool memory_is_causal, AttentionBackend& backend);
  // forward's two halves before the closing residual add: {y, f} with forward = y + f, from x
  // and h = norm1(x). (Lets the caller fuse that add with the LayerNorm that follows it.)
  std::array<at::Tensor, 2> forward_parts(const at::Tensor& x, const at::Tensor& h,
                                          const at::Tensor& memory, bool tgt_is_causal,
                                          bool memory_is_causal, AttentionBackend& backend);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr}, norm4{nullptr};
  MultiheadDilatedAttention self_attn{nullptr}, multihead_attn{nullptr};  // the latter may be null
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  bool gelu_;
};
TORCH_MODULE(DecoderLayer);

// MAGNETO's init gains (arXiv 2210.06423, Fig. 2) for M decoder and N encoder layers.
double magneto_encoder_gamma(int64_t num_encoder_layers, int64_t num_decoder_layers);
double magneto_decoder_gamma(int64_t num_decoder_layers);       // encoder-decoder: sqrt(log 3M)
double magneto_decoder_only_gamma(int64_t num_decoder_layers);  // decoder-only: sqrt(log 2M)

// The reference library's LongNet: encoder layers over x, then decoder layers over x that
// cross-attend to the encoder's output. The encoder ends in a LayerNorm (pre-LN needs one before
// the memory is used); the decoder output is left unnormalised, as the reference library's, for
// LongNetLM's final LayerNorm.
class LongNetImpl : public torch::nn::Module {
 public:
  explicit LongNetImpl(const LongNetOptions& o = {});
  // x: (B, N_local, d_model) -> (B, N_local, d_model). is_causal applies to the encoder's
  // self-attention, the decoder's self-attention and its cross-attention (as the reference).
  at::Tensor forward(const at::Tensor& x, bool is_causal, AttentionBackend& backend);
  at::Tensor forward(const at::Tensor& x, bool is_causal = true);

  torch::nn::ModuleList encoder_layers{nullptr}, decoder_layers{nullptr};
  torch::nn::LayerNorm encoder_norm{nullptr};
  std::vector<EncoderLayer> encoder;  // the same modules as encoder_layers, typed
  std::vector<DecoderLayer> decoder;  // the same modules as decoder_layers, typed

 private:
  LocalAttention local_;
};
TORCH_MODULE(LongNet);

// A causal language model: token_embedding -> body -> norm -> out (logits over vocab_size).
// Positions come from xPos inside every attention (global indices, from the backend), so
// there is no position embedding. decoder_only: `layers`; encoder_decoder: `long_net`.
class LongNetLMImpl : public torch::nn::Module {
 public:
  explicit LongNetLMImpl(const LongNetLMOptions& o = {});
  // tokens: (B, N_local) int64, this rank's tokens -> logits (B, N_local, vocab_size).
  at::Tensor forward(const at::Tensor& tokens, AttentionBackend& backend);
  at::Tensor forward(const at::Tensor& tokens);
  // The final LayerNorm's output, before `out`: (B, N_local, d_model); forward = out(this). A
  // loss over a large vocabulary takes it with out's weight and bias
  // (core/chunked_cross_entropy.h) instead of the whole logits.
  at::Tensor forward_hidden(const at::Tensor& tokens, AttentionBackend& backend);

  const LongNetLMOptions& options() const { return options_; }

  torch::nn::Embedding token_embedding{nullptr};
  torch::nn::ModuleList layers{nullptr};  // decoder_only
  std::vector<DecoderLayer> decoder;      // decoder_only: the same modules as `layers`, typed
  LongNet long_net{nullptr};              // encoder_decoder
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear out{nullptr};

 private:
  LongNetLMOptions options_;
  LocalAttention local_;
};
TORCH_MODULE(LongNetLM);

}  // namespace longnet
