// Prefill and step of IncrementalLM (see incremental_lm.h). The step mirrors the modules' forward
// (longnet_model.cpp) for one token per sequence, with the same kernels (fused LayerNorms,
// xPos); the attention is the cache's.
#include "longnet/core/incremental_lm.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <string>

#include "longnet/core/dilated_plan.h"
#include "longnet/core/int_math.h"
#include "longnet/core/layer_norm.h"
#include "longnet/core/small_linear.h"

namespace longnet {

namespace {

// The AttentionBackend of a prefill chunk: the forward's own dilated attention on the chunk (its
// segments lie inside it), each attention's rotated keys and values handed to its cache, and
// positions that give xPos the block-mode reference of generation.
class CacheFillBackend : public AttentionBackend {
 public:
  CacheFillBackend(std::vector<std::unique_ptr<DilatedKVCache>>& caches,
                   const std::vector<int64_t>& lengths, const std::vector<int64_t>& rows,
                   int64_t chunk_start, int64_t block)
      : caches_(caches), lengths_(lengths), rows_(rows), chunk_start_(chunk_start), block_(block) {}
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const DilatedAttentionOptions& o) override {
    TORCH_INTERNAL_ASSERT(calls_ < caches_.size(), "prefill: more attentions than caches");
    auto out = dilated_attention(q, k, v, o);
    caches_[calls_++]->fill(k, v, chunk_start_, lengths_, rows_);
    return out;
  }
  int64_t position_offset(int64_t) const override { return chunk_start_; }
  // At least one block long, so that xPos's reference is the block centre (xpos.h) however
  // short the prompt.
  int64_t global_len(int64_t local_len) const override {
    return std::max(chunk_start_ + local_len, block_);
  }
  size_t calls() const { return calls_; }

 private:
  std::vector<std::unique_ptr<DilatedKVCache>>& caches_;
  const std::vector<int64_t>&lengths_, &rows_;
  int64_t chunk_start_, block_;
  size_t calls_ = 0;
};

// The FFN of a layer in eval mode, as longnet_model.cpp's ffn_forward: h is already normalised by
// the FFN's pre-LN.
at::Tensor ffn_apply(torch::nn::Linear& linear1, torch::nn::LayerNorm& sub,
                     torch::nn::Linear& linear2, const at::Tensor& h, bool gelu) {
  auto a = linear_apply(linear1, h);
  auto z = gelu ? gelu_layer_norm_apply(sub, a) : layer_norm_apply(sub, at::relu(a));
  return linear_apply(linear2, z);
}

}  // namespace

struct IncrementalLM::Attention {
  MultiheadDilatedAttention m{nullptr};
  bool self;
  at::Tensor w_in, b_in;  // self: q, k, v stacked (3d, d); cross: k, v stacked (2d, d)
  double scale;
};

IncrementalLM::IncrementalLM(LongNetLM model, int64_t batch, IncrementalOptions options)
    : model_(std::move(model)), options_(options), batch_(batch) {
  const auto& o = model_->options();
  block_ = generation_block_check(o.layer.attention);
  vocab_ = o.vocab_size;
  gelu_ = o.layer.activation == "gelu";
  TORCH_CHECK(batch >= 1, "IncrementalLM: batch = ", batch, " must be >= 1");
  TORCH_CHECK(!model_->is_training(),
              "IncrementalLM: the model is in training mode; call model->eval() first (dropout "
              "would make the step differ from the forward)");
  TORCH_CHECK(options_.prefill_chunk >= 1,
              "IncrementalLM: prefill_chunk = ", options_.prefill_chunk, " must be >= 1");
  options_.prefill_chunk = ceil_div(options_.prefill_chunk, block_) * block_;
  const auto& w = model_->token_embedding->weight;
  TORCH_CHECK(o.num_layers >= 1, "IncrementalLM: the model has no decoder layers");
  auto add = [&](MultiheadDilatedAttention m, bool self) {
    at::NoGradGuard no_grad;
    auto a = std::make_unique<Attention>();
    a->m = m;
    a->self = self;
    std::vector<at::Tensor> ws, bs;
    if (self) ws.push_back(m->q_proj->weight), bs.push_back(m->q_proj->bias);
    ws.push_back(m->k_proj->weight), bs.push_back(m->k_proj->bias);
    ws.push_back(m->v_proj->weight), bs.push_back(m->v_proj->bias);
    a->w_in = at::cat(ws);
    if (bs[0].defined()) a->b_in = at::cat(bs);
    a->scale = dilated_scale(m->attention_options(), m->head_dim());
    caches_.push_back(std::make_unique<DilatedKVCache>(m->attention_options(), batch_,
                                                       m->num_heads(), m->head_dim(), w.options()));
    caches_.back()->set_one_pass(options_.one_pass_attention);
    // Before each step's cache attention runs its q/k/v projection; the positions and caches
    // are written only by ordinary (not early) launches, each followed by others before a step.
    caches_.back()->set_early_launch(true);
    attentions_.push_back(std::move(a));
  };
  if (o.variant == "decoder_only") {
    for (auto& layer : model_->decoder) add(layer->self_attn, true);
  } else {
    for (auto& layer : model_->long_net->encoder) add(layer->self_attn, true);
    for (auto& layer : model_->long_net->decoder) {
      add(layer->self_attn, true);
      add(layer->multihead_attn, false);
    }
  }
  // On the GPU in 16-bit, the step's LayerNorms read float32 copies of their parameters: the
  // fused kernels take float32 gamma and beta and would otherwise convert them on every call
  // (two extra kernels per LayerNorm per step). Same numbers.
  if (w.is_cuda() && w.scalar_type() != at::kFloat) {
    for (const auto& item : model_->named_modules()) {
      auto* ln = dynamic_cast<torch::nn::LayerNormImpl*>(item.value().get());
      if (!ln || !ln->weight.defined()) continue;
      torch::nn::LayerNorm copy(ln->options);
      copy->to(w.device(), at::kFloat);
      {
        at::NoGradGuard no_grad;
        copy->weight.copy_(ln->weight);
        copy->bias.copy_(ln->bias);
      }
      float_norms_.emplace(ln, copy);
    }
  }
  auto i64 = w.options().dtype(at::kLong);
  positions_ = at::zeros({batch_}, i64);
  tokens_in_ = at::zeros({batch_}, i64);
  graph_ = std::make_unique<StepGraph>(options_.cuda_graph);
  fused_step_ = options_.fused_step && fused_step_supported();
}

IncrementalLM::~IncrementalLM() = default;

int64_t IncrementalLM::cache_bytes_for(const LongNetLMOptions& o, int64_t batch,
                                       int64_t element_size) {
  const auto& a = o.layer.attention;
  int64_t slots = 0;
  for (size_t i = 0; i < a.segment_lengths.size() && i < a.dilation_rates.size(); ++i)
    slots += ceil_div(a.segment_lengths[i], std::max<int64_t>(a.dilation_rates[i], 1));
  const int64_t attentions =
      o.variant == "decoder_only" ? o.num_layers : o.num_encoder_layers + 2 * o.num_layers;
  // k and v: (batch, heads, slots, head_dim) each, heads x head_dim = d_model.
  const auto n = product_checked({2, attentions, batch, o.layer.d_model, slots, element_size});
  return n ? *n : -1;
}

int64_t IncrementalLM::cache_bytes() const {
  int64_t n = 0;
  for (const auto& c : caches_) n += c->bytes();
  return n;
}

int64_t IncrementalLM::state_bytes() const {
  int64_t n = cache_bytes() + positions_.nbytes() + tokens_in_.nbytes();
  for (const auto& a : attentions_)
    n += a->w_in.nbytes() + (a->b_in.defined() ? a->b_in.nbytes() : 0);
  for (const auto& [key, norm] : float_norms_) n += norm->weight.nbytes() + norm->bias.nbytes();
  return n;
}

int64_t IncrementalLM::step_bytes_read(const std::vector<int64_t>& positions) const {
  // Every parameter once (the fused projection copies stand in for their sources, byte for
  // byte), but only B rows of the embedding table.
  int64_t n = 0;
  for (const auto& p : model_->named_parameters()) {
    const auto& t = p.value();
    n += p.key() == "token_embedding.weight" ? batch_ * t.size(1) * t.element_size() : t.nbytes();
  }
  for (const auto& c : caches_) {
    const int64_t row = 2 * c->head_dim() * c->keys().element_size();  // k and v
    for (int64_t p : positions)
      for (int64_t h = 0; h < c->heads(); ++h) n += c->rows_read(p, h) * row;
  }
  return n;
}

at::Tensor IncrementalLM::body_prefill(const at::Tensor& tokens, AttentionBackend& backend) {
  auto x = model_->token_embedding(tokens);  // (B, T, d)
  if (model_->options().variant == "decoder_only") {
    auto& dec = model_->decoder;
    if (dec.empty()) return layer_norm_apply(model_->norm, x);
    auto h = layer_norm_apply(dec[0]->norm1, x);
    for (size_t i = 0; i < dec.size(); ++i) {
      auto [y, f] = dec[i]->forward_parts(x, h, at::Tensor(), true, true, backend);
      auto& next = i + 1 < dec.size() ? dec[i + 1]->norm1 : model_->norm;
      auto r = add_layer_norm_apply(next, y, f);
      x = r[0], h = r[1];
    }
    return h;
  }
  x = model_->long_net->forward(x, /*is_causal=*/true, backend);
  return layer_norm_apply(model_->norm, x);
}

at::Tensor IncrementalLM::prefill(const at::Tensor& tokens, const std::vector<int64_t>& lengths,
                                  at::Tensor* all_logits) {
  return prefill_range(tokens, lengths, 0, tokens.dim() == 2 ? tokens.size(1) : 0, all_logits);
}

at::Tensor IncrementalLM::prefill_rows(const at::Tensor& tokens,
                                       const std::vector<int64_t>& lengths,
                                       const std::vector<int64_t>& rows) {
  TORCH_CHECK(!rows.empty(), "IncrementalLM::prefill_rows: no rows");
  return prefill_range(tokens, lengths, 0, tokens.dim() == 2 ? tokens.size(1) : 0, nullptr, rows);
}

at::Tensor IncrementalLM::prefill_range(const at::Tensor& tokens_in,
                                        const std::vector<int64_t>& lengths, int64_t begin,
                                        int64_t end, at::Tensor* all_logits,
                                        const std::vector<int64_t>& rows) {
  const int64_t B = rows.empty() ? batch_ : int64_t(rows.size());  // the sequences prefilled
  TORCH_CHECK(
      tokens_in.dim() == 2 && tokens_in.size(0) == B && tokens_in.scalar_type() == at::kLong,
      "IncrementalLM::prefill: tokens must be (", B, ", P) int64; got ", tokens_in.sizes(), " ",
      tokens_in.scalar_type());
  check_cache_rows(rows, batch_, "IncrementalLM::prefill_rows");
  const int64_t P = tokens_in.size(1);
  TORCH_CHECK(int64_t(lengths.size()) == B, "IncrementalLM::prefill: ", lengths.size(),
              " prompt lengths for ", B, " sequences");
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK(lengths[b] >= 1 && lengths[b] <= P, "IncrementalLM::prefill: prompt ", b,
                " has length ", lengths[b], "; lengths must lie in [1, ", P,
                "] (an empty prompt gives no logits to start from)");
  TORCH_CHECK(begin >= 0 && begin <= end && end <= P && begin % block_ == 0 &&
                  (end % block_ == 0 || end == P),
              "IncrementalLM::prefill_range: [", begin, ", ", end, ") of ", P,
              " tokens does not start and end at multiples of ", block_, " (or at P)");
  at::NoGradGuard no_grad;
  const auto device = positions_.device();
  auto tokens = tokens_in.to(device);
  auto last = at::zeros({B, vocab_}, model_->out->weight.options());
  std::vector<at::Tensor> chunks_logits;
  const int64_t T = options_.prefill_chunk;
  for (int64_t c0 = begin; c0 < end; c0 += T) {
    const int64_t n = std::min(T, end - c0);
    CacheFillBackend backend(caches_, lengths, rows, c0, block_);
    auto h = body_prefill(tokens.narrow(1, c0, n), backend);  // (B, n, d)
    TORCH_INTERNAL_ASSERT(backend.calls() == caches_.size(), "prefill: ", backend.calls(),
                          " attentions ran for ", caches_.size(), " caches");
    if (all_logits) chunks_logits.push_back(linear_apply(model_->out, h));
    // The sequences whose last prompt token lies in this chunk.
    std::vector<int64_t> ending, cols;
    for (int64_t b = 0; b < B; ++b)
      if (lengths[b] - 1 >= c0 && lengths[b] - 1 < c0 + n)
        ending.push_back(b), cols.push_back(lengths[b] - 1 - c0);
    if (!ending.empty()) {
      auto r = at::tensor(ending, at::kLong).to(device), c = at::tensor(cols, at::kLong).to(device);
      last.index_put_({r}, linear_apply(model_->out, h.index({r, c})));
    }
  }
  if (all_logits)
    *all_logits = chunks_logits.empty() ? at::empty({B, 0, vocab_}, model_->out->weight.options())
                                        : at::cat(chunks_logits, 1);
  if (rows.empty())
    positions_.copy_(at::tensor(lengths, at::kLong));
  else
    positions_.index_copy_(0, at::tensor(rows, at::kLong).to(device),
                           at::tensor(lengths, at::kLong).to(device));
  prefilled_ = true;
  return last;
}

torch::nn::LayerNorm& IncrementalLM::step_norm(torch::nn::LayerNorm& norm) {
  auto it = float_norms_.find(norm.get());
  return it == float_norms_.end() ? norm : it->second;
}

void IncrementalLM::state_from(const IncrementalLM& src, int64_t index) {
  TORCH_CHECK(src.prefilled_, "IncrementalLM::state_from: the source has no prompt yet");
  TORCH_CHECK(src.caches_.size() == caches_.size() && src.block_ == block_,
              "IncrementalLM::state_from: the source generator is for another model");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < caches_.size(); ++i) caches_[i]->copy_from(*src.caches_[i], index);
  positions_.copy_(src.positions_.narrow(0, index, 1).expand_as(positions_));
  prefilled_ = true;
}

at::Tensor IncrementalLM::attention_step(Attention& a, const at::Tensor& hq, const at::Tensor& hm,
                                         DilatedKVCache& cache) {
  auto& m = a.m;
  const int64_t B = batch_, H = m->num_heads(), D = m->head_dim(), d = m->embed_dim();
  at::Tensor q, k, v;  // (B, 1, H, D)
  if (a.self) {
    auto qkv = at::linear(hq, a.w_in, a.b_in).view({B, 1, 3, H, D});
    q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
  } else {
    q = linear_apply(m->q_proj, hq).view({B, 1, H, D});
    auto kv = at::linear(hm, a.w_in, a.b_in).view({B, 1, 2, H, D});
    k = kv.select(2, 0), v = kv.select(2, 1);
  }
  if (m->xpos) {
    q = xpos_rotate_at(q, tables_, /*key=*/false);
    k = xpos_rotate_at(k, tables_, /*key=*/true);
  }
  auto x = cache.step(q.view({B, H, D}), k.view({B, H, D}), v.view({B, H, D}), positions_, a.scale)
               .view({B, 1, d});
  if (m->norm) x = layer_norm_apply(step_norm(m->norm), x);
  return linear_apply(m->out_proj, x);  // (B, 1, d)
}

at::Tensor IncrementalLM::step_body() {
  const auto& att0 = attentions_.front()->m;
  const auto ct = model_->out->weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  tables_ = xpos_tables_at(positions_, block_, att0->head_dim(), ct);
  auto x = model_->token_embedding(tokens_in_).view({batch_, 1, -1});  // (B, 1, d)
  at::Tensor h;
  size_t ai = 0;
  auto next_attention = [&]() -> std::pair<Attention&, DilatedKVCache&> {
    auto& a = *attentions_[ai];
    auto& c = *caches_[ai];
    ++ai;
    return {a, c};
  };
  if (model_->options().variant == "decoder_only") {
    auto& dec = model_->decoder;
    h = layer_norm_apply(step_norm(dec[0]->norm1), x);
    for (size_t i = 0; i < dec.size(); ++i) {
      auto [a, c] = next_attention();
      auto yh = add_layer_norm_apply(step_norm(dec[i]->norm3), x, attention_step(a, h, h, c));
      auto f = ffn_apply(dec[i]->linear1, step_norm(dec[i]->norm4), dec[i]->linear2, yh[1], gelu_);
      auto& next = i + 1 < dec.size() ? dec[i + 1]->norm1 : model_->norm;
      auto r = add_layer_norm_apply(step_norm(next), yh[0], f);
      x = r[0], h = r[1];
    }
  } else {
    auto& net = model_->long_net;
    auto mem = x;
    for (auto& layer : net->encoder) {
      auto [a, c] = next_attention();
      auto hn = layer_norm_apply(step_norm(layer->norm1), mem);
      auto yh = add_layer_norm_apply(step_norm(layer->norm2), mem, attention_step(a, hn, hn, c));
      mem =
          yh[0] + ffn_apply(layer->linear1, step_norm(layer->norm3), layer->linear2, yh[1], gelu_);
    }
    mem = layer_norm_apply(step_norm(net->encoder_norm), mem);
    for (auto& layer : net->decoder) {
      auto [sa, sc] = next_attention();
      auto hn = layer_norm_apply(step_norm(layer->norm1), x);
      auto yh = add_layer_norm_apply(step_norm(layer->norm2), x, attention_step(sa, hn, hn, sc));
      auto [ca, cc] = next_attention();
      yh = add_layer_norm_apply(step_norm(layer->norm3), yh[0], attention_step(ca, yh[1], mem, cc));
      x = yh[0] + ffn_apply(layer->linear1, step_norm(layer->norm4), layer->linear2, yh[1], gelu_);
    }
    h = layer_norm_apply(step_norm(model_->norm), x);
  }
  auto logits = linear_apply(model_->out, h).view({batch_, vocab_});
  positions_.add_(1);
  return logits;
}

namespace {

// The fused linear's arguments for weight and bias with the LayerNorm `norm` (or none) in front.
SmallLinearArgs linear_args(const at::Tensor& weight, const at::Tensor& bias,
                            torch::nn::LayerNorm* norm,
                            SmallLinearActivation act = SmallLinearActivation::none) {
  SmallLinearArgs a;
  a.weight = weight;
  a.bias = bias;
  if (norm) a.gamma = (*norm)->weight, a.beta = (*norm)->bias, a.eps = (*norm)->options.eps();
  a.activation = act;
  return a;
}
SmallLinearArgs linear_args(torch::nn::Linear& linear, torch::nn::LayerNorm* norm,
                            SmallLinearActivation act = SmallLinearActivation::none) {
  return linear_args(linear->weight, linear->bias, norm, act);
}

}  // namespace

SmallLinearArgs IncrementalLM::qkv_args(Attention& a, torch::nn::LayerNorm& norm,
                                        const XposPositionTables& tables) {
  auto args = linear_args(a.w_in, a.b_in, &step_norm(norm));
  if (a.m->xpos) {  // q and k come out rotated
    args.rotate = &tables;
    args.rotate_width = a.m->embed_dim();
    args.rotate_head_dim = a.m->head_dim();
  }
  return args;
}

bool IncrementalLM::fused_step_supported() {
  const auto& o = model_->options();
  if (o.variant != "decoder_only" || batch_ > kSmallLinearMaxRows ||
      batch_ > options_.fused_step_max_batch)
    return false;
  const auto& w = model_->token_embedding->weight;
  // A stand-in for each linear's input: (B, K) of the model's dtype and device.
  auto input = [&](int64_t K) { return at::empty({batch_, K}, w.options()); };
  auto norm_ok = [&](torch::nn::LayerNorm& n) {
    return n && n->weight.defined() && n->bias.defined();
  };
  auto ok = [&](torch::nn::Linear& l, torch::nn::LayerNorm* n) {
    if (n && !norm_ok(*n)) return false;
    return small_linear_supported(input(l->weight.size(1)),
                                  linear_args(l, n ? &step_norm(*n) : nullptr));
  };
  // The step builds one set of xPos tables, for the first attention's head size; here, tables
  // of the step's shape.
  const int64_t head_dim = attentions_.front()->m->head_dim();
  const auto tables = xpos_tables_at(positions_, block_, head_dim, at::kFloat);
  size_t i = 0;
  for (auto& layer : model_->decoder) {
    auto& a = *attentions_[i++];
    if (!norm_ok(layer->norm1) || a.m->head_dim() != head_dim) return false;
    if (!small_linear_supported(input(a.w_in.size(1)), qkv_args(a, layer->norm1, tables)))
      return false;
    if (!ok(a.m->out_proj, a.m->norm ? &a.m->norm : nullptr) ||
        !ok(layer->linear1, &layer->norm3) || !ok(layer->linear2, &layer->norm4))
      return false;
  }
  return ok(model_->out, &model_->norm);
}

at::Tensor IncrementalLM::step_body_fused() {
  const auto& att0 = attentions_.front()->m;
  const auto ct = model_->out->weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  tables_ = xpos_tables_at(positions_, block_, att0->head_dim(), ct);
  auto x = model_->token_embedding(tokens_in_);  // (B, d)
  const auto act = gelu_ ? SmallLinearActivation::gelu : SmallLinearActivation::relu;
  auto& dec = model_->decoder;
  for (size_t i = 0; i < dec.size(); ++i) {
    auto& a = *attentions_[i];
    auto& m = a.m;
    const int64_t B = batch_, H = m->num_heads(), D = m->head_dim(), d = m->embed_dim();
    // x + out_proj(subLN(attention(LN1(x) W_in^T + b_in)))
    auto qkv = small_linear(x, qkv_args(a, dec[i]->norm1, tables_)).view({B, 3, H, D});
    auto q = qkv.select(1, 0), k = qkv.select(1, 1), v = qkv.select(1, 2);
    auto attn = caches_[i]->step(q, k, v, positions_, a.scale).reshape({B, d});
    x = small_linear(attn, linear_args(m->out_proj, m->norm ? &step_norm(m->norm) : nullptr), x);
    // x + linear2(LN4(act(linear1(LN3(x)))))
    auto u = small_linear(x, linear_args(dec[i]->linear1, &step_norm(dec[i]->norm3)));
    x = small_linear(u, linear_args(dec[i]->linear2, &step_norm(dec[i]->norm4), act), x);
  }
  auto logits = small_linear(x, linear_args(model_->out, &step_norm(model_->norm)));
  positions_.add_(1);
  return logits;
}

at::Tensor IncrementalLM::step(const at::Tensor& tokens) {
  TORCH_CHECK(prefilled_, "IncrementalLM::step: prefill a prompt first");
  TORCH_CHECK(tokens.numel() == batch_ && tokens.scalar_type() == at::kLong,
              "IncrementalLM::step: tokens must be (", batch_, ",) int64; got ", tokens.sizes(),
              " ", tokens.scalar_type());
  at::NoGradGuard no_grad;
  tokens_in_.copy_(tokens.reshape({batch_}), /*non_blocking=*/true);
  return graph_->run([this] { return fused_step_ ? step_body_fused() : step_body(); }, positions_);
}

}  // namespace longnet
