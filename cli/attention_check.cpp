// Sequence-parallel attention against the single-process computation (see attention_check.h).
#include "longnet/cli/attention_check.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "longnet/cli/common_flags.h"
#include "longnet/parallel/mpi_bootstrap.h"
#include "longnet/parallel/process_grid.h"
#include "longnet/parallel/sequence_layout.h"
#include "longnet/parallel/sequence_parallel_attention.h"

namespace longnet {

namespace {

// Relative error over the whole sequence: sums of squares all-reduced over the sp group.
double global_rel_error(Communicator& comm, const at::Tensor& a, const at::Tensor& ref) {
  auto d = a.to(at::kDouble), r = ref.to(at::kDouble);
  auto sums = at::stack({(d - r).pow(2).sum(), r.pow(2).sum()});
  comm.all_reduce(sums, ReduceOp::kSum)->wait();
  auto s = sums.to(at::kDouble).cpu();
  double num = s[0].item<double>(), den = s[1].item<double>();
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double tolerance(c10::ScalarType t) {
  switch (t) {
    case c10::kDouble:
      return 1e-9;
    case c10::kFloat:
      return 1e-4;
    case c10::kHalf:
      return 1e-2;
    default:
      return 3e-2;  // bfloat16: both sides round partial results differently
  }
}

}  // namespace

int attention_check(const AttentionCheckOptions& c) {
  mpi_ensure_initialized();
  const int64_t sp_size = c.sp > 0 ? c.sp : mpi_world_size();
  auto grid = process_grid_create(0, static_cast<int>(sp_size), c.device);
  DilatedAttentionOptions o;
  o.segment_lengths = c.segments;
  o.dilation_rates = c.rates;
  o.is_causal = c.causal;
  o.engine = c.engine;
  dilated_options_check(o);
  const int64_t L = SequenceLayout(c.seq_len, sp_size, o.segment_lengths).local_len();
  // q, k, v, the output gradient, the reference output and its three gradients, on every rank.
  tensor_memory_check("check attention", "--batch x --seq-len x --heads x --head-dim",
                      {c.batch, c.seq_len, c.heads, c.head_dim}, 8, c.dtype, grid->device);

  // The same full input on every rank: one seed, the same generator on every device.
  at::manual_seed(c.seed);
  auto opts = at::TensorOptions().dtype(c.dtype).device(grid->device);
  auto q = at::randn({c.batch, c.seq_len, c.heads, c.head_dim}, opts);
  auto k = at::randn_like(q), v = at::randn_like(q), gout = at::randn_like(q);

  auto ref = dilated_attention_forward(q, k, v, o);
  auto [rdq, rdk, rdv] = dilated_attention_backward(gout, q, k, v, ref.out, ref.lse, {}, o);
  auto part = [&](const at::Tensor& x) { return x.narrow(1, grid->sp_index * L, L).contiguous(); };

  SequenceParallelAttention attn(grid);
  auto f = attn.forward(part(q), part(k), part(v), o);
  auto [dq, dk, dv] = attn.backward(part(gout), part(q), part(k), part(v), f, o);

  auto& comm = *grid->sp;
  double e_out = global_rel_error(comm, f.out, part(ref.out));
  double e_dq = global_rel_error(comm, dq, part(rdq));
  double e_dk = global_rel_error(comm, dk, part(rdk));
  double e_dv = global_rel_error(comm, dv, part(rdv));
  const double tol = tolerance(c.dtype);

  // Bytes per rank, gathered for one table.
  auto all_sent = world_all_gather_bytes(*grid, at::full({1}, attn.bytes_sent(), at::kLong))
                      .view(at::kLong)
                      .reshape({-1});
  std::ostringstream s;
  s << "check attention: N=" << c.seq_len << " B=" << c.batch << " H=" << c.heads
    << " D=" << c.head_dim << " sp=" << sp_size << " causal=" << c.causal << " dtype=" << c.dtype
    << " device=" << grid->device << " (" << comm.backend() << ")\n"
    << "  relative error vs single process: out " << e_out << ", dq " << e_dq << ", dk " << e_dk
    << ", dv " << e_dv << " (tolerance " << tol << ")\n  bytes sent per rank:";
  for (int64_t r = 0; r < grid->world_size; ++r) s << " " << all_sent[r].item<int64_t>();
  const bool ok = e_out <= tol && e_dq <= tol && e_dk <= tol && e_dv <= tol;
  s << "\n  " << (ok ? "PASS" : "FAIL");
  log_info(s.str());
  return ok ? 0 : 1;
}

}  // namespace longnet
