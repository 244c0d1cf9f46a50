// Sequence-parallel dilated attention: the plan of local and spanning problems, the dilated K/V
// exchange, and the autograd function (see sequence_parallel_attention.h for the layout).
#include "longnet/parallel/sequence_parallel_attention.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdio>
#include <cstdlib>
#include <limits>

#include "longnet/core/int_math.h"

#ifdef LONGNET_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace longnet {
namespace {

// engine.memory_trace: each rank prints the CUDA allocator's allocated and peak GiB after every
// stage of the forward, to see where memory goes in a run that nearly fills the GPU.
void memory_trace(const at::Tensor& x, const DilatedAttentionOptions& o, const char* stage,
                  int rank) {
#ifdef LONGNET_WITH_CUDA
  if (!o.engine.memory_trace || !x.is_cuda()) return;
  const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(x.device().index());
  std::fprintf(stderr, "[rank %d] memory after %s: %.3f GiB allocated, peak %.3f GiB\n", rank,
               stage, double(s.allocated_bytes[0].current) / double(1ull << 30),
               double(s.allocated_bytes[0].peak) / double(1ull << 30));
#else
  (void)x, (void)o, (void)stage, (void)rank;
#endif
}

// Rows of offset class s (rate r) among the L tokens starting at segment-local position u:
// returns their count and sets *a0 to the first one's local index.
int64_t class_rows(int64_t u, int64_t s, int64_t r, int64_t L, int64_t* a0) {
  *a0 = pmod(s - u, r);
  return *a0 < L ? ceil_div(L - *a0, r) : 0;
}

// This rank's (B, L, H, *) tensors; undefined ones are not needed by the pass.
struct Tensors {
  at::Tensor q, k, v, out, lse, dout, dq, dk, dv;
};

// A branch whose segments span several ranks.
struct Spanning {
  int64_t w = 0, r = 1;
  std::shared_ptr<Communicator> group;  // the ranks of this rank's segment
  int64_t me = 0;                       // this rank's index in the group
  int64_t n_loc = 0;                    // padded rows per head sent by each rank: ceil(L / r)
};

AttentionCall call_of(const Tensors& t, const std::function<at::Tensor(const at::Tensor&)>& view) {
  auto v = [&](const at::Tensor& x) { return x.defined() ? view(x) : at::Tensor(); };
  AttentionCall c;
  c.q = v(t.q);
  c.k = v(t.k);
  c.v = v(t.v);
  c.out = v(t.out);
  c.lse = v(t.lse);
  c.dout = v(t.dout);
  c.dq = v(t.dq);
  c.dk = v(t.dk);
  c.dv = v(t.dv);
  return c;
}

// The view of x (B, L, H, *) holding this rank's rows of offset class s of spanning branch sp
// (empty when it has none): (B, rows, H_s, *).
at::Tensor class_view(const at::Tensor& x, const Spanning& sp, int64_t s) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2);
  int64_t a0 = 0;
  const int64_t c = class_rows(sp.me * L, s, sp.r, L, &a0);
  return strided_rows_view(x, 0, B, a0, c, sp.r, s, ceil_div(H - s, sp.r), sp.r);
}

// The problems of offset class s of one spanning branch: this rank's queries against its own
// rows, then against every other rank's rows (gathered: (g, 2, B, n_loc, H, D); dgathered, the
// matching gradient buffer, may be undefined). All share the query rows.
std::vector<AttentionCall> class_calls(const Tensors& t, const Spanning& sp, int64_t s,
                                       const at::Tensor& gathered, const at::Tensor& dgathered,
                                       bool causal) {
  std::vector<AttentionCall> calls;
  const int64_t B = t.q.size(0), L = t.q.size(1), H = t.q.size(2), r = sp.r;
  if (class_view(t.q, sp, s).size(1) == 0) return calls;
  auto own = call_of(t, [&](const at::Tensor& x) { return class_view(x, sp, s); });
  own.causal = causal;
  calls.push_back(own);
  for (int64_t j = 0; j < sp.group->size(); ++j) {
    if (j == sp.me || (causal && j > sp.me)) continue;
    int64_t aj = 0;
    const int64_t cj = class_rows(j * L, s, r, L, &aj);
    if (cj == 0) continue;
    auto theirs = [&](const at::Tensor& x, int kv) {
      return x.defined() ? strided_rows_view(x[j][kv], 0, B, 0, cj, 1, s, ceil_div(H - s, r), r)
                         : at::Tensor();
    };
    AttentionCall other = own;
    other.k = theirs(gathered, 0);
    other.v = theirs(gathered, 1);
    other.dk = theirs(dgathered, 0);
    other.dv = theirs(dgathered, 1);
    other.causal = false;
    calls.push_back(std::move(other));
  }
  return calls;
}

// Offset classes with heads: s < min(r, H).
int64_t class_count(const Spanning& sp, int64_t H) {
  return std::min(sp.r, H);
}

// This rank's dilated rows of k and v for branch sp: (2, B, n_loc, H, D), zero padded.
at::Tensor pack_rows(const at::Tensor& k, const at::Tensor& v, const Spanning& sp) {
  const int64_t B = k.size(0), L = k.size(1), H = k.size(2), D = k.size(3), r = sp.r;
  auto send = at::zeros({2, B, sp.n_loc, H, D}, k.options());
  for (int64_t s = 0; s < std::min(r, H); ++s) {
    const int64_t heads = ceil_div(H - s, r);
    int64_t a0 = 0;
    const int64_t c = class_rows(sp.me * L, s, r, L, &a0);
    if (c == 0) continue;
    strided_rows_view(send[0], 0, B, 0, c, 1, s, heads, r)
        .copy_(strided_rows_view(k, 0, B, a0, c, r, s, heads, r));
    strided_rows_view(send[1], 0, B, 0, c, 1, s, heads, r)
        .copy_(strided_rows_view(v, 0, B, a0, c, r, s, heads, r));
  }
  return send;
}

// Adds the reduce-scattered key/value gradients (2, B, n_loc, H, D) into dk, dv (B, L, H, D).
void unpack_rows_add(const at::Tensor& mine, const at::Tensor& dk, const at::Tensor& dv,
                     const Spanning& sp) {
  const int64_t B = dk.size(0), L = dk.size(1), H = dk.size(2), r = sp.r;
  for (int64_t s = 0; s < std::min(r, H); ++s) {
    const int64_t heads = ceil_div(H - s, r);
    int64_t a0 = 0;
    const int64_t c = class_rows(sp.me * L, s, r, L, &a0);
    if (c == 0) continue;
    strided_rows_view(dk, 0, B, a0, c, r, s, heads, r)
        .add_(strided_rows_view(mine[0], 0, B, 0, c, 1, s, heads, r));
    strided_rows_view(dv, 0, B, a0, c, r, s, heads, r)
        .add_(strided_rows_view(mine[1], 0, B, 0, c, 1, s, heads, r));
  }
}

// Splits the branches into those computed locally and those spanning ranks.
void split_branches(ProcessGrid& grid, int64_t L, const DilatedAttentionOptions& o,
                    DilatedAttentionOptions* local, std::vector<Spanning>* spanning) {
  const int64_t P = grid.sequence_parallel, N = L * P;
  *local = o;
  local->segment_lengths.clear();
  local->dilation_rates.clear();
  for (size_t i = 0; i < o.segment_lengths.size(); ++i) {
    const int64_t w = std::min(o.segment_lengths[i], N), r = o.dilation_rates[i];
    if (w <= L) {
      local->segment_lengths.push_back(w);
      local->dilation_rates.push_back(r);
      continue;
    }
    Spanning sp;
    sp.w = w;
    sp.r = r;
    const int64_t g = w / L;
    sp.group = grid.segment_group(static_cast<int>(g));
    sp.me = grid.sp_index % g;
    sp.n_loc = ceil_div(L, r);
    spanning->push_back(std::move(sp));
  }
}

}  // namespace

void SequenceParallelAttention::layout_check(int64_t local_len, const DilatedAttentionOptions& o) {
  if (local_len == checked_len_ && o.segment_lengths == checked_segments_) return;
  sequence_layout_local(local_len, grid_->sequence_parallel, o.segment_lengths);
  checked_len_ = local_len;
  checked_segments_ = o.segment_lengths;
}

SequenceParallelAttention::SequenceParallelAttention(std::shared_ptr<ProcessGrid> grid)
    : grid_(std::move(grid)) {}

int64_t SequenceParallelAttention::position_offset(int64_t local_len) const {
  return grid_->sp_index * local_len;
}

int64_t SequenceParallelAttention::global_len(int64_t local_len) const {
  return local_len * grid_->sequence_parallel;
}

SequenceParallelAttention::Forward SequenceParallelAttention::forward(
    const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
    const DilatedAttentionOptions& o) {
  dilated_inputs_check(q_in, k_in, v_in, o);
  layout_check(q_in.size(1), o);
  auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  const int64_t B = q.size(0), L = q.size(1), H = q.size(2);
  DilatedAttentionOptions local;
  std::vector<Spanning> spanning;
  split_branches(*grid_, L, o, &local, &spanning);

  Forward f;
  // 1. Start the exchanges of dilated keys and values.
  std::vector<std::unique_ptr<CommWork>> works;
  for (const auto& sp : spanning) {
    auto send = pack_rows(k, v, sp);
    auto recv = at::empty({sp.group->size(), 2, B, sp.n_loc, H, q.size(3)}, q.options());
    works.push_back(sp.group->all_gather(send, recv));
    bytes_sent_ += send.nbytes();
    f.gathered.push_back(recv);
  }
  const int rank = grid_->world_rank;
  memory_trace(q, o, "the K/V exchange start", rank);
  // 2. Meanwhile the branches that live on this rank: the single-device path (fused merge on
  // the GPU) over its whole segments.
  const auto acc = lse_dtype_for(q.scalar_type());
  if (!local.segment_lengths.empty()) {
    auto loc = dilated_attention_forward(q, k, v, local);
    f.out = loc.out;
    f.lse = loc.lse;
    f.rng = loc.rng;
  } else {
    f.out = at::zeros_like(q);
    f.lse = at::full({B, L, H}, -std::numeric_limits<double>::infinity(), q.options().dtype(acc));
  }
  memory_trace(q, o, "the local branches", rank);
  // 3. Each spanning branch as its keys arrive, merged by log-sum-exp into the rows it selects
  // (1 / r of them per head), so the rest of the output is left as it is.
  Tensors t;
  t.q = q;
  t.k = k;
  t.v = v;
  const auto args = dense_args_of(o, q.size(3));
  for (size_t i = 0; i < spanning.size(); ++i) {
    works[i]->wait();
    for (int64_t cls = 0; cls < class_count(spanning[i], H); ++cls) {
      auto calls = class_calls(t, spanning[i], cls, f.gathered[i], at::Tensor(), o.is_causal);
      if (calls.empty()) continue;
      std::vector<at::Tensor> outs, lses;
      for (auto& c : calls) {
        DenseAttentionArgs a = args;
        a.causal = c.causal;
        auto r = dense_attention_forward(c.q, c.k, c.v, a);
        if (o.dropout > 0) f.rng.push_back(r.rng);
        outs.push_back(r.out);
        lses.push_back(r.lse.transpose(1, 2).to(acc));  // (B', n, H')
      }
      auto lv = class_view(f.lse, spanning[i], cls), ov = class_view(f.out, spanning[i], cls);
      std::vector<at::Tensor> all{lv};
      all.insert(all.end(), lses.begin(), lses.end());
      auto lse_new = at::logsumexp(at::stack(all), 0);
      // Divided by the weights' sum (1 but for the rounding of lse_new at large logits), so
      // that each row stays a weighted average of its values.
      auto weight = (lv - lse_new).exp_();
      auto merged = ov.to(acc) * weight.unsqueeze(-1);
      auto weights = weight.clone();
      for (size_t c = 0; c < outs.size(); ++c) {
        weight = (lses[c] - lse_new).exp_();
        merged += outs[c].to(acc) * weight.unsqueeze(-1);
        weights += weight;
      }
      ov.copy_(merged / weights.unsqueeze(-1));
      lv.copy_(lse_new);
    }
    memory_trace(q, o, "a spanning branch", rank);
  }
  return f;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> SequenceParallelAttention::backward(
    const at::Tensor& dout_in, const at::Tensor& q_in, const at::Tensor& k_in,
    const at::Tensor& v_in, const Forward& f, const DilatedAttentionOptions& o) {
  auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  auto dout = dout_in.to(q.scalar_type()).contiguous(), out = f.out.contiguous();
  const int64_t B = q.size(0), L = q.size(1), H = q.size(2);
  DilatedAttentionOptions local;
  std::vector<Spanning> spanning;
  split_branches(*grid_, L, o, &local, &spanning);
  const auto acc = q.options().dtype(lse_dtype_for(q.scalar_type()));

  // 1. The local branches (fused on the GPU), with the merged output and lse of all branches.
  size_t n_local_rng = 0;
  at::Tensor dq, dk, dv;
  if (!local.segment_lengths.empty()) {
    std::vector<at::Tensor> rng;
    if (!f.rng.empty()) {
      n_local_rng = dilated_plan(B, L, H, local).size();
      rng.assign(f.rng.begin(), f.rng.begin() + n_local_rng);
    }
    std::tie(dq, dk, dv) = dilated_attention_backward(dout, q, k, v, out, f.lse, rng, local);
  } else {
    dq = at::zeros_like(q);
    dk = at::zeros_like(q);
    dv = at::zeros_like(q);
  }
  // 2. The spanning branches: their gradients for this rank's rows go into dq, dk, dv; those
  // for other ranks' rows into a buffer that a reduce-scatter returns to their owners.
  Tensors t{q, k, v, out, f.lse, dout, dq, dk, dv};
  const auto args = dense_args_of(o, q.size(3));
  size_t next_rng = n_local_rng;
  std::vector<std::unique_ptr<CommWork>> works;
  std::vector<at::Tensor> mine;
  for (size_t i = 0; i < spanning.size(); ++i) {
    const auto& sp = spanning[i];
    auto dgathered = at::zeros(f.gathered[i].sizes(), acc);
    for (int64_t cls = 0; cls < class_count(sp, H); ++cls)
      for (auto& c : class_calls(t, sp, cls, f.gathered[i], dgathered, o.is_causal)) {
        if (!f.rng.empty()) c.rng = f.rng.at(next_rng++);
        attention_call_backward(c, args);
      }
    mine.push_back(at::empty({2, B, sp.n_loc, H, q.size(3)}, acc));
    works.push_back(sp.group->reduce_scatter(dgathered, mine.back()));
    bytes_sent_ += dgathered.nbytes();
  }
  for (size_t i = 0; i < spanning.size(); ++i) {
    works[i]->wait();
    unpack_rows_add(mine[i].to(q.scalar_type()), dk, dv, spanning[i]);
  }
  return {dq, dk, dv};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class SequenceParallelFunction : public torch::autograd::Function<SequenceParallelFunction> {
 public:
  // `self` must outlive the graph (the model owns it for the whole run).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q_in, const at::Tensor& k_in,
                            const at::Tensor& v_in, SequenceParallelAttention* self,
                            const DilatedAttentionOptions& o) {
    // Saved contiguous (what both passes read), so that the backward copies nothing again.
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    auto f = self->forward(q, k, v, o);
    std::vector<at::Tensor> saved{q, k, v, f.out, f.lse};
    saved.insert(saved.end(), f.gathered.begin(), f.gathered.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["self"] = reinterpret_cast<int64_t>(self);
    dilated_ctx_save(ctx, o, q.size(3), f.rng);
    return f.out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    dilated_double_backward_check();
    auto saved = ctx->get_saved_variables();
    auto* self = reinterpret_cast<SequenceParallelAttention*>(ctx->saved_data["self"].toInt());
    const auto o = dilated_ctx_options(ctx);
    SequenceParallelAttention::Forward f;
    f.out = saved[3];
    f.lse = saved[4];
    f.gathered.assign(saved.begin() + 5, saved.end());
    f.rng = dilated_ctx_rng(ctx);
    auto [dq, dk, dv] = self->backward(grads[0], saved[0], saved[1], saved[2], f, o);
    return {dq, dk, dv, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor SequenceParallelAttention::attend(const at::Tensor& q, const at::Tensor& k,
                                             const at::Tensor& v,
                                             const DilatedAttentionOptions& o) {
  if (grid_->sequence_parallel == 1) return dilated_attention(q, k, v, o);
  return SequenceParallelFunction::apply(q, k, v, this, o);
}

}  // namespace longnet
