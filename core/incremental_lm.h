// Generation with a LongNetLM in constant memory (docs/design.md section 7): a prefill runs the
// model's own forward over the prompt, in chunks, and fills every attention's dilated KV cache
// (core/dilated_cache.h) on the way; then each step feeds one token per sequence and returns the
// logits of the next, equal (up to rounding) to the full forward's logits at that position.
//
//   batch B, each sequence at its own position:
//     prompt tokens (B, P) right-padded, lengths[b] <= P  ->  prefill  ->  logits (B, V)
//     token (B,) at positions()[b]                         ->  step     ->  logits (B, V)
//
// Every cached tensor is allocated once: the state at position 1M is the state at 32K. xPos uses
// the block-mode reference (the centre of the token's block of w_max tokens) for every token,
// which needs nested segment lengths (generation_block_check); for sequences shorter than w_max
// the full forward's reference differs, but both share it across every pair of tokens that
// attend to each other, so the logits agree in exact arithmetic (and to rounding in practice).
// The training forward is untouched: prefill calls it through an AttentionBackend that fills the
// caches, and the step is its own code over the same modules and kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "longnet/core/dilated_cache.h"
#include "longnet/core/longnet_model.h"
#include "longnet/core/small_linear.h"
#include "longnet/core/step_graph.h"

namespace longnet {

struct IncrementalOptions {
  // Tokens per prefill forward (rounded up to a multiple of the largest segment length): bounds
  // the prefill's activation memory for prompts of any length.
  int64_t prefill_chunk = 65536;
  // Replay the step as a CUDA graph (CUDA only).
  bool cuda_graph = true;
  // Run a decoder-only model's step with the fused small-batch linears (small_linear.h: each
  // LayerNorm, activation, residual add and xPos folded into the linear next to it) where they
  // apply: CUDA, float32/float16/bfloat16, batch <= fused_step_max_batch (at most
  // kSmallLinearMaxRows), widths the kernel takes, affine LayerNorms. Elsewhere, or when off, the
  // step runs one op per module (fused_step() says which). The default batch limit is where the
  // fused step measured faster (docs/performance.md); larger batches read their weights once
  // per row block in cuBLAS's GEMMs, which the fused kernel does not beat.
  bool fused_step = true;
  int64_t fused_step_max_batch = 2;
  // On CUDA, each cache's attention in one kernel (DilatedKVCache::set_one_pass); off: three.
  bool one_pass_attention = true;
};

class IncrementalLM {
 public:
  // model: in eval mode, on the device and in the dtype to generate with (its parameters'). The
  // caches are allocated here. Throws OptionsError for segment lengths generation cannot take.
  IncrementalLM(LongNetLM model, int64_t batch, IncrementalOptions options = {});
  ~IncrementalLM();

  // tokens: (B, P) int64 (any device), sequence b's prompt in tokens[b, :lengths[b]] (the rest
  // padding), 1 <= lengths[b] <= P. Restarts every sequence. Returns the logits after each
  // prompt's last token, (B, V). With all_logits, also every prompt position's (B, P, V)
  // (padding rows included).
  at::Tensor prefill(const at::Tensor& tokens, const std::vector<int64_t>& lengths,
                     at::Tensor* all_logits = nullptr);
  // The prompts of some sequences only: tokens (n, P) and lengths are those of sequences rows[i]
  // (n distinct, in [0, batch())), which restart; the others keep their state. Returns (n, V).
  // Prompts of very different lengths prefill so in groups of similar lengths (each padded to its
  // own longest), then continue as one batch; every sequence is prefilled before the first step.
  at::Tensor prefill_rows(const at::Tensor& tokens, const std::vector<int64_t>& lengths,
                          const std::vector<int64_t>& rows);

  // One rank's part of a prefill split over several (parallel/parallel_prefill.h): runs prompt
  // tokens [begin, end) only, begin a multiple of block() and end a multiple of it or P. Blocks
  // of block() tokens are independent (no segment crosses one), so the caches of the sequences
  // whose last prompt token lies in the range end as a whole prefill leaves them, and so do
  // their rows of the returned (B, V) logits; the other rows are zero and the other sequences'
  // caches hold stale slots (the caller copies both from the rank that ran them). An empty range
  // runs nothing. Positions become `lengths` either way. With all_logits: the range's (B, end -
  // begin, V).
  // With rows (not empty), the range of those sequences' prompts, as prefill_rows.
  at::Tensor prefill_range(const at::Tensor& tokens, const std::vector<int64_t>& lengths,
                           int64_t begin, int64_t end, at::Tensor* all_logits = nullptr,
                           const std::vector<int64_t>& rows = {});

  // Every sequence continues from sequence `index` of src (a generator of the same model after
  // its prefill): its caches and position, copied. (Several samples of one prompt, prefilled
  // once.)
  void state_from(const IncrementalLM& src, int64_t index);

  // tokens: (B,) int64, the token at each sequence's position (positions()); returns the logits
  // for the position after it, (B, V), and advances every position by one. With a CUDA graph the
  // result is overwritten by the next step: clone it to keep it.
  at::Tensor step(const at::Tensor& tokens);

  // (B,) int64 on the model's device: the position of the token the next step takes. The live
  // tensor, which every step advances: clone it to keep a value.
  const at::Tensor& positions() const { return positions_; }
  // Whether steps run the fused small-batch linears (IncrementalOptions::fused_step).
  bool fused_step() const { return fused_step_; }
  int64_t batch() const { return batch_; }
  // The largest segment length: no segment of any branch crosses a multiple of it.
  int64_t block() const { return block_; }
  LongNetLM& model() { return model_; }
  // The caches in the order the model's attentions run (decoder-only: one per layer;
  // encoder-decoder: each encoder layer's, then each decoder layer's self- and cross-attention).
  const std::vector<std::unique_ptr<DilatedKVCache>>& caches() const { return caches_; }
  // Bytes the caches of a generator for `batch` sequences of a model with options o take, k and
  // v in a dtype of element_size bytes (what the constructor allocates); -1 if over int64.
  static int64_t cache_bytes_for(const LongNetLMOptions& o, int64_t batch, int64_t element_size);
  // Bytes of every cache; and of everything the generator keeps besides the model's parameters
  // (caches, fused projection weights, float32 LayerNorm copies, positions, the step's input).
  int64_t cache_bytes() const;
  int64_t state_bytes() const;
  // Bytes one step reads at least, for bandwidth bounds: every parameter once (the embedding
  // table: B rows), and the cached k and v rows the step's queries attend to with the sequences
  // at these positions (rows_read of every cache and head).
  int64_t step_bytes_read(const std::vector<int64_t>& positions) const;

 private:
  struct Attention;  // one attention's modules and fused weights
  at::Tensor body_prefill(const at::Tensor& tokens, AttentionBackend& backend);  // (B, T, d)
  at::Tensor step_body();                                                        // (B, V)
  at::Tensor step_body_fused();  // decoder-only, with the fused small-batch linears
  bool fused_step_supported();
  // The fused q, k, v projection of a self-attention with its pre-LayerNorm (and xPos).
  SmallLinearArgs qkv_args(Attention& a, torch::nn::LayerNorm& norm,
                           const XposPositionTables& tables);
  at::Tensor attention_step(Attention& a, const at::Tensor& hq, const at::Tensor& hm,
                            DilatedKVCache& cache);
  // The LayerNorm the step runs for one of the model's: a float32 copy on the GPU in 16-bit.
  torch::nn::LayerNorm& step_norm(torch::nn::LayerNorm& norm);

  LongNetLM model_;
  IncrementalOptions options_;
  int64_t batch_, block_, vocab_;
  bool gelu_, fused_step_ = false;
  std::vector<std::unique_ptr<Attention>> attentions_;  // parallel to caches_
  std::vector<std::unique_ptr<DilatedKVCache>> caches_;
  at::Tensor positions_, tokens_in_;  // (B,) int64, the step's static inputs
  XposPositionTables tables_;         // of the current step
  std::unique_ptr<StepGraph> graph_;
  std::map<const void*, torch::nn::LayerNorm> float_norms_;  // model's LayerNormImpl -> copy
  bool prefilled_ = false;
};

}  // namespace longnet
