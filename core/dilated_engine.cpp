// The plain engine: dense problems merged with ATen maths (see dilated_engine.h).
#include "longnet/core/dilated_engine.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace longnet {

DenseAttentionArgs dense_args_of(const DilatedAttentionOptions& o, int64_t head_dim) {
  DenseAttentionArgs a;
  a.scale = dilated_scale(o, head_dim);
  a.dropout = o.dropout;
  a.causal = o.is_causal;
  a.kernel = o.engine.backend == "flash" ? DenseKernel::kFlash : DenseKernel::kCudnn;
  return a;
}

AttentionCall plan_call(const DilatedProblem& p, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v) {
  AttentionCall c;
  c.q = dilated_view(q, p);
  c.k = dilated_view(k, p);
  c.v = dilated_view(v, p);
  c.copies = p.copies;
  return c;
}

void attention_calls_forward(std::vector<AttentionCall>& calls, const DenseAttentionArgs& args) {
  // Pass 1: every problem, and the merged log-sum-exp.
  std::vector<at::Tensor> outs, lses;
  for (auto& c : calls) {
    DenseAttentionArgs a = args;
    a.causal = c.causal;
    auto r = dense_attention_forward(c.q, c.k, c.v, a);
    c.rng = r.rng;
    auto lse_c = r.lse.transpose(1, 2);                            // (B', n, H')
    if (c.copies > 1) lse_c = lse_c + std::log(double(c.copies));  // counted `copies` times
    c.lse.copy_(at::logaddexp(c.lse, lse_c));
    outs.push_back(std::move(r.out));
    lses.push_back(std::move(lse_c));
  }
  // Pass 2: out = sum_c exp(lse_c - lse) out_c, and the weights' sum per row in `weights`.
  for (size_t i = 0; i < calls.size(); ++i) {
    auto weight = (lses[i] - calls[i].lse).exp_();
    calls[i].out.add_(outs[i] * weight.unsqueeze(-1));
    if (calls[i].weights.defined()) calls[i].weights.add_(weight);
  }
}

void attention_call_backward(AttentionCall& c, const DenseAttentionArgs& args) {
  DenseAttentionArgs a = args;
  a.causal = c.causal;
  auto lse = c.lse.permute({0, 2, 1}).contiguous();  // (B', H', n)
  auto [dq, dk, dv] = dense_attention_backward(c.dout, c.q, c.k, c.v, c.out, lse, c.rng, a);
  const double m = double(c.copies);  // one copy's share, `copies` times
  c.dq.add_(dq, m);
  c.dk.add_(dk, m);
  c.dv.add_(dv, m);
}

DilatedForward dilated_plain_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const DilatedAttentionOptions& o) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
  const auto args = dense_args_of(o, q.size(3));
  auto acc = q.options().dtype(lse_dtype_for(q.scalar_type()));
  auto out = at::zeros(q.sizes(), acc);
  auto lse = at::full({B, N, H}, -std::numeric_limits<double>::infinity(), acc);
  auto weights = at::zeros({B, N, H}, acc);
  std::vector<AttentionCall> calls;
  for (const auto& p : dilated_plan(B, N, H, o)) {
    AttentionCall c = plan_call(p, q, k, v);
    c.out = dilated_view(out, p);
    c.lse = dilated_view(lse, p);
    c.weights = dilated_view(weights, p);
    c.causal = o.is_causal;
    calls.push_back(std::move(c));
  }
  attention_calls_forward(calls, args);
  // The weights sum to 1 but for the rounding of the merged lse, which grows with the logits
  // (float32 logits past about 1e7 would otherwise scale rows by up to the number of branches):
  // dividing by their sum keeps every row a weighted average of its values.
  out.div_(weights.clamp_min(std::numeric_limits<float>::min()).unsqueeze(-1));
  DilatedForward f;
  f.out = out.to(q.scalar_type());
  f.lse = lse;
  if (o.dropout > 0)
    for (auto& c : calls) f.rng.push_back(c.rng);
  return f;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dilated_plain_backward(
    const at::Tensor& dout, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& out, const at::Tensor& lse, const std::vector<at::Tensor>& rng,
    const DilatedAttentionOptions& o) {
  const int64_t B = q.size(0), N = q.size(1), H = q.size(2);
  const auto plan = dilated_plan(B, N, H, o);
  const auto args = dense_args_of(o, q.size(3));
  auto acc = q.options().dtype(lse_dtype_for(q.scalar_type()));
  auto dq = at::zeros(q.sizes(), acc), dk = at::zeros(q.sizes(), acc),
       dv = at::zeros(q.sizes(), acc);
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& p = plan[i];
    AttentionCall c = plan_call(p, q, k, v);
    c.out = dilated_view(out, p);
    c.lse = dilated_view(lse, p);
    c.dout = dilated_view(dout, p);
    c.dq = dilated_view(dq, p);
    c.dk = dilated_view(dk, p);
    c.dv = dilated_view(dv, p);
    c.causal = o.is_causal;
    if (!rng.empty()) c.rng = rng[i];
    attention_call_backward(c, args);
  }
  auto t = q.scalar_type();
  return {dq.to(t), dk.to(t), dv.to(t)};
}

}  // namespace longnet
