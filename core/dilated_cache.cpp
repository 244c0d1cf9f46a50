// The dilated KV cache (see dilated_cache.h): the slot arithmetic, the prompt fill, and the
// step's ATen path; the CUDA path is dilated_cache_cuda.cu behind dilated_cache_kernel.h.
#include "longnet/core/dilated_cache.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>
#include <string>

#include "longnet/core/int_math.h"

#ifdef LONGNET_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "longnet/core/dilated_cache_kernel.h"
#include "longnet/core/kernel_dtype.h"
#endif

namespace longnet {

int64_t generation_block_check(const DilatedAttentionOptions& o) {
  dilated_options_check(o);
  const int64_t W = *std::max_element(o.segment_lengths.begin(), o.segment_lengths.end());
  for (size_t i = 0; i < o.segment_lengths.size(); ++i)
    if (W % o.segment_lengths[i] != 0)
      throw OptionsError(
          "generation", "segment_lengths[" + std::to_string(i) + "]",
          std::to_string(o.segment_lengths[i]) + " does not divide the largest segment length " +
              std::to_string(W) +
              ". Generation needs nested segment lengths (each dividing the largest, as the "
              "paper's 2048, 4096, ..., 32768): then xPos's reference position is the centre of "
              "the token's block of " +
              std::to_string(W) +
              " whatever the final length, which decoding cannot know. Train with nested "
              "segment lengths to generate");
  return W;
}

void check_cache_rows(const std::vector<int64_t>& rows, int64_t batch, const char* who) {
  std::vector<bool> seen(size_t(std::max<int64_t>(batch, 0)), false);
  for (const int64_t r : rows) {
    TORCH_CHECK(r >= 0 && r < batch && !seen[size_t(r)], who, ": row ", r, " is outside [0, ",
                batch, ") or given twice");
    seen[size_t(r)] = true;
  }
}

DilatedKVCache::DilatedKVCache(const DilatedAttentionOptions& o, int64_t batch, int64_t heads,
                               int64_t head_dim, at::TensorOptions options)
    : batch_(batch), heads_(heads), head_dim_(head_dim) {
  block_ = generation_block_check(o);
  TORCH_CHECK(o.segment_lengths.size() <= 8, "DilatedKVCache: at most 8 branches; got ",
              o.segment_lengths.size());
  TORCH_CHECK(batch >= 1 && heads >= 1 && head_dim >= 1, "DilatedKVCache: batch = ", batch,
              ", heads = ", heads, ", head_dim = ", head_dim, " must all be >= 1");
  // (The decode kernels do their slot maths in 32 bits.)
  constexpr int64_t kMax32 = std::numeric_limits<int32_t>::max();
  TORCH_CHECK(block_ <= kMax32 && heads <= kMax32, "DilatedKVCache: the largest segment length (",
              block_, ") and the heads (", heads, ") must be at most ", kMax32);
  std::vector<int64_t> slot_branch, slot_local, slot_rate;
  for (size_t i = 0; i < o.segment_lengths.size(); ++i) {
    w_.push_back(o.segment_lengths[i]);
    r_.push_back(o.dilation_rates[i]);
    cap_.push_back(ceil_div(w_[i], r_[i]));
    off_.push_back(slots_);
    slots_ += cap_[i];
    for (int64_t a = 0; a < cap_[i]; ++a) {
      slot_branch.push_back(int64_t(i));
      slot_local.push_back(a);
      slot_rate.push_back(r_[i]);
    }
  }
  // Zeros, not garbage: a slot is always written before it is read, but NaN bit patterns in
  // never-read slots would still poison the ATen path's masked matmul (0 * NaN).
  k_ = at::zeros({batch, heads, slots_, head_dim}, options);
  v_ = at::zeros({batch, heads, slots_, head_dim}, options);
  auto i64 = options.dtype(at::kLong);
  auto vec = [&](const std::vector<int64_t>& x) {
    return at::tensor(x, at::TensorOptions().dtype(at::kLong)).to(i64.device());
  };
  slot_branch_ = vec(slot_branch);
  slot_local_ = vec(slot_local);
  slot_rate_ = vec(slot_rate);
  w_t_ = vec(w_);
  r_t_ = vec(r_);
  off_t_ = vec(off_);
  heads_t_ = at::arange(heads, i64);
  // The one-pass decode kernel's arrival counts, per (sequence, head) and per (sequence, head,
  // branch); 0 between steps.
  if (k_.is_cuda())
    arrivals_ = at::zeros({batch * heads * int64_t(1 + w_.size())}, options.dtype(at::kInt));
}

int64_t DilatedKVCache::bytes() const {
  return k_.nbytes() + v_.nbytes();
}

int64_t DilatedKVCache::rows_read(int64_t position, int64_t head) const {
  int64_t rows = 0;
  for (size_t i = 0; i < w_.size(); ++i) {
    const int64_t o = position % w_[i];
    if (head % r_[i] == o % r_[i]) rows += o / r_[i] + 1;
  }
  return rows;
}

void DilatedKVCache::copy_from(const DilatedKVCache& src, int64_t index) {
  TORCH_CHECK(src.heads_ == heads_ && src.head_dim_ == head_dim_ && src.slots_ == slots_ &&
                  src.w_ == w_ && src.r_ == r_,
              "DilatedKVCache::copy_from: the source cache has another geometry");
  TORCH_CHECK(index >= 0 && index < src.batch_, "DilatedKVCache::copy_from: sequence ", index,
              " of a batch of ", src.batch_);
  at::NoGradGuard no_grad;
  k_.copy_(src.k_.narrow(0, index, 1).expand_as(k_));
  v_.copy_(src.v_.narrow(0, index, 1).expand_as(v_));
}

void DilatedKVCache::fill(const at::Tensor& k, const at::Tensor& v, int64_t chunk_start,
                          const std::vector<int64_t>& lengths, const std::vector<int64_t>& rows) {
  const int64_t n = rows.empty() ? batch_ : int64_t(rows.size());
  TORCH_CHECK(k.dim() == 4 && k.size(0) == n && k.size(2) == heads_ && k.size(3) == head_dim_ &&
                  v.sizes() == k.sizes(),
              "DilatedKVCache::fill: k and v must be (", n, ", T, ", heads_, ", ", head_dim_,
              "); got ", k.sizes(), " and ", v.sizes());
  TORCH_CHECK(int64_t(lengths.size()) == n, "DilatedKVCache::fill: ", lengths.size(),
              " prompt lengths for ", n, " sequences");
  check_cache_rows(rows, batch_, "DilatedKVCache::fill");
  const int64_t T = k.size(1);
  TORCH_CHECK(chunk_start % block_ == 0, "DilatedKVCache::fill: a prompt chunk starts at ",
              chunk_start, ", not a multiple of the largest segment length ", block_);
  // Sources (b, t, h) in the chunk and destinations (row of b, h, slot) in the cache.
  std::vector<int64_t> sb, st, sh, dslot;
  for (int64_t b = 0; b < n; ++b) {
    const int64_t P = lengths[b];
    TORCH_CHECK(T % block_ == 0 || P <= chunk_start + T, "DilatedKVCache::fill: a chunk of ", T,
                " tokens that is not a multiple of ", block_, " must be the prompt's last");
    for (size_t i = 0; i < w_.size(); ++i) {
      // The segment that position P (the first to generate) lies in, if it starts here.
      const int64_t m = P / w_[i] * w_[i];
      if (m == P || m < chunk_start || m >= chunk_start + T) continue;
      for (int64_t h = 0; h < heads_; ++h)
        for (int64_t a = 0, t = m + h % r_[i]; t < P; ++a, t += r_[i]) {
          sb.push_back(b);
          st.push_back(t - chunk_start);
          sh.push_back(h);
          dslot.push_back(off_[i] + a);
        }
    }
  }
  if (sb.empty()) return;
  auto idx = [&](const std::vector<int64_t>& x) {
    return at::tensor(x, at::TensorOptions().dtype(at::kLong)).to(k_.device());
  };
  auto b = idx(sb), t = idx(st), h = idx(sh), s = idx(dslot);
  auto d = rows.empty() ? b : idx(rows).index_select(0, b);  // b's row in the cache
  at::NoGradGuard no_grad;
  k_.index_put_({d, h, s}, k.index({b, t, h}).to(k_.scalar_type()));
  v_.index_put_({d, h, s}, v.index({b, t, h}).to(v_.scalar_type()));
}

at::Tensor DilatedKVCache::step_reference(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const at::Tensor& positions,
                                          double scale) {
  at::NoGradGuard no_grad;
  const int64_t B = batch_, H = heads_, D = head_dim_;
  auto pos = positions.view({B, 1});
  auto o = at::remainder(pos, w_t_.view({1, -1}));  // (B, nb)
  auto rate = r_t_.view({1, -1});
  auto a = at::div(o, rate, "floor"), s = at::remainder(o, rate);  // (B, nb)
  // sel[b, h, i]: head h selects the new token in branch i.
  auto sel = at::remainder(heads_t_.view({1, -1, 1}), r_t_.view({1, 1, -1})) == s.unsqueeze(1);
  // Store: slot off_i + a_i of every head, keeping the old row where the head does not select.
  const int64_t nb = int64_t(w_.size());
  auto slot = (off_t_.view({1, -1}) + a).view({B, 1, nb, 1}).expand({B, H, nb, D});
  auto store = [&](at::Tensor& cache, const at::Tensor& x) {
    auto old = cache.gather(2, slot);  // (B, H, nb, D)
    auto upd = at::where(sel.unsqueeze(-1), x.to(cache.scalar_type()).reshape({B, H, 1, D}), old);
    cache.scatter_(2, slot, upd);
  };
  store(k_, k);
  store(v_, v);
  // Which slots row b, head h reads: its branch selects it, and the slot is at or below a.
  auto a_slot = a.index_select(1, slot_branch_), s_slot = s.index_select(1, slot_branch_);
  auto valid = (slot_local_.view({1, -1}) <= a_slot).unsqueeze(1) &
               (at::remainder(heads_t_.view({1, -1, 1}), slot_rate_.view({1, 1, -1})) ==
                s_slot.unsqueeze(1));  // (B, H, S)
  const auto ct = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto scores = at::matmul(k_.to(ct), q.to(ct).reshape({B, H, D, 1})).squeeze(-1) * scale;
  scores.masked_fill_(valid.logical_not(), -std::numeric_limits<double>::infinity());
  auto m = std::get<0>(scores.max(-1, true));  // (B, H, 1)
  m = at::where(at::isinf(m), at::zeros_like(m), m);
  auto p = at::exp(scores - m);                                 // masked slots: exp(-inf) = 0
  auto l = p.sum(-1, true);                                     // (B, H, 1)
  auto out = at::matmul(p.unsqueeze(2), v_.to(ct)).squeeze(2);  // (B, H, D)
  out = at::where(l > 0, out / l.clamp_min(std::numeric_limits<float>::min()), at::zeros_like(out));
  return out.to(k_.scalar_type());
}

#ifdef LONGNET_WITH_CUDA
namespace {
bool decode_kernel_ok(const at::Tensor& cache, int64_t D) {
  const auto t = cache.scalar_type();
  return cache.is_cuda() && (t == at::kFloat || t == at::kHalf || t == at::kBFloat16) &&
         (D == 16 || D == 32 || D == 64 || D == 128 || D == 256);
}
}  // namespace
#endif

at::Tensor DilatedKVCache::step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& positions, double scale) {
  const int64_t B = batch_, H = heads_, D = head_dim_;
  for (const auto* x : {&q, &k, &v})
    TORCH_CHECK(x->dim() == 3 && x->size(0) == B && x->size(1) == H && x->size(2) == D,
                "DilatedKVCache::step: q, k, v must be (", B, ", ", H, ", ", D, "); got ",
                x->sizes());
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.numel() == B &&
                  positions.device() == k_.device(),
              "DilatedKVCache::step: positions must be (", B, ",) int64 on ", k_.device(), "; got ",
              positions.sizes(), " ", positions.scalar_type(), " on ", positions.device());
#ifdef LONGNET_WITH_CUDA
  if (decode_kernel_ok(k_, D) && q.scalar_type() == k_.scalar_type() &&
      k.scalar_type() == k_.scalar_type() && v.scalar_type() == k_.scalar_type()) {
    c10::cuda::CUDAGuard guard(k_.device());
    auto qc = q.stride(2) == 1 ? q : q.contiguous();
    auto kc = k.stride(2) == 1 ? k : k.contiguous();
    auto vc = v.stride(2) == 1 ? v : v.contiguous();
    auto pos = positions.contiguous();
    DilatedDecodeParams p;
    p.B = B;
    p.H = H;
    p.D = D;
    p.S = slots_;
    p.nb = int(w_.size());
    int64_t max_cap = 0;
    for (int i = 0; i < p.nb; ++i) {
      p.w[i] = w_[i];
      p.r[i] = r_[i];
      p.off[i] = off_[i];
      max_cap = std::max(max_cap, cap_[i]);
    }
    // Small batches: short chunks so that enough blocks run; large ones: fewer, longer.
    p.chunk_rows = B * H >= 256 ? 256 : 64;
    p.max_chunks = ceil_div(max_cap, p.chunk_rows);
    p.scale = float(scale);
    p.one_pass = one_pass_;
    p.arrivals = reinterpret_cast<unsigned*>(arrivals_.data_ptr<int>());
    p.early_launch = early_launch_;
    p.q = qc.data_ptr();
    p.k_new = kc.data_ptr();
    p.v_new = vc.data_ptr();
    p.q_stride_b = qc.stride(0);
    p.q_stride_h = qc.stride(1);
    p.k_stride_b = kc.stride(0);
    p.k_stride_h = kc.stride(1);
    p.v_stride_b = vc.stride(0);
    p.v_stride_h = vc.stride(1);
    p.k_cache = k_.data_ptr();
    p.v_cache = v_.data_ptr();
    p.positions = pos.data_ptr<int64_t>();
    auto partial =
        at::empty({B * H * p.nb * p.max_chunks * (D + 2)}, k_.options().dtype(at::kFloat));
    auto out = at::empty({B, H, D}, k_.options());
    p.partial = partial.data_ptr<float>();
    p.out = out.data_ptr();
    dilated_decode_launch(p, kernel_dtype_code(k_.scalar_type(), "dilated decode"),
                          at::cuda::getCurrentCUDAStream().stream());
    return out;
  }
#endif
  return step_reference(q, k, v, positions, scale);
}

}  // namespace longnet
