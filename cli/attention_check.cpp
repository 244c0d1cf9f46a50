// Sequence-parallel attention against the single-process computation (see attention_check.h).
#include "longnet/cli/attention_check.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "longnet/cli/common_flags.h"
#include "longnet/core/dilated_plan.h"
#include "longnet/core/dilated_reference.h"
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

// The float64 definition (core/dilated_reference.h) holds (B, H, N, N) tensors: compared with
// it only up to this many elements (512 MiB each in float64).
constexpr int64_t kReferenceMaxElements = int64_t{1} << 26;

// B * H * N^2, or -1 past 2^62.
int64_t reference_elements(const AttentionCheckOptions& c) {
  const long double n = static_cast<long double>(c.batch) * c.heads * c.seq_len * c.seq_len;
  return n > static_cast<long double>(int64_t{1} << 62) ? -1 : static_cast<int64_t>(n);
}

// The single-process output and gradients against the float64 definition: relative errors of
// out, dq, dk, dv, and those of the same maths done naively in the dtype (for the precision
// rule: low precision may be at most twice as far from float64 as the naive computation).
struct ReferenceErrors {
  double got[4], naive[4];
};
ReferenceErrors reference_errors(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& gout, const std::vector<at::Tensor>& got,
                                 const DilatedAttentionOptions& o) {
  const double scale = o.softmax_scale.value_or(1.0 / std::sqrt(double(q.size(-1))));
  auto run = [&](c10::ScalarType t, c10::Device d) {
    std::vector<at::Tensor> in;
    for (const auto& x : {q, k, v}) in.push_back(x.to(d, t).detach().requires_grad_(true));
    auto out = reference::reference_dilated_attention(in[0], in[1], in[2], o.segment_lengths,
                                                      o.dilation_rates, o.is_causal, scale);
    out.backward(gout.to(d, t));
    return std::vector<at::Tensor>{out.detach(), in[0].grad(), in[1].grad(), in[2].grad()};
  };
  const auto exact = run(at::kDouble, at::kCPU);
  ReferenceErrors e{};
  const bool low = q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16;
  const auto naive = low ? run(q.scalar_type(), q.device()) : std::vector<at::Tensor>{};
  for (int i = 0; i < 4; ++i) {
    e.got[i] = reference::rel_error(got[i], exact[i]);
    e.naive[i] = low ? reference::rel_error(naive[i], exact[i]) : 0.0;
  }
  return e;
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
  if (mpi_world_size() % sp_size != 0)
    throw std::invalid_argument(
        "longnet check attention: --sp " + std::to_string(sp_size) +
        " does not divide the world size " + std::to_string(mpi_world_size()) +
        " (the ranks started): give a --sp that divides it (or leave it out: all ranks), or "
        "start " +
        std::to_string(sp_size) + " rank(s) (mpirun -np " + std::to_string(sp_size) + ")");
  auto grid = process_grid_create(0, static_cast<int>(sp_size), c.device);
  engine_flags_cpu_note(c.engine, grid->device, "check attention");
  DilatedAttentionOptions o;
  o.segment_lengths = c.segments;
  o.dilation_rates = c.rates;
  o.is_causal = c.causal;
  o.engine = c.engine;
  dilated_options_check(o);
  const int64_t ref_elements = reference_elements(c);
  const bool with_reference = ref_elements >= 0 && ref_elements <= kReferenceMaxElements;
  // On one rank there is no split to compare: the float64 definition must be the check.
  if (sp_size == 1 && !with_reference)
    throw std::invalid_argument(
        "check attention: on one rank nothing is split over ranks, so the check compares the "
        "engine with the float64 definition instead, which needs --batch x --heads x --seq-len^2 "
        "<= 2^26 (here " +
        (ref_elements < 0 ? std::string("more than 2^62") : std::to_string(ref_elements)) +
        "): give a smaller --seq-len (e.g. 1024 with 12 heads), or run under mpirun -np P "
        "(P > 1) to check the sequence-parallel path");
  const int64_t L = SequenceLayout(c.seq_len, sp_size, o.segment_lengths).local_len();
  // q, k, v, the output gradient, the reference output and its three gradients, on every rank.
  // The reference is the whole sequence's forward and backward on each rank: its scores and
  // their gradient.
  tensor_memory_check(
      "check attention", "--batch x --seq-len x --heads x --head-dim",
      {c.batch, c.seq_len, c.heads, c.head_dim}, 8, c.dtype, grid->device,
      2 * dilated_plain_score_bytes(c.batch * c.seq_len, c.seq_len, c.heads, o.segment_lengths,
                                    o.dilation_rates, c.dtype, grid->device));

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
  // The single-process result against the float64 definition (small problems only).
  std::ostringstream def;
  bool def_ok = true;
  if (with_reference) {
    const auto e = reference_errors(q, k, v, gout, {ref.out, rdq, rdk, rdv}, o);
    const bool low = c.dtype == at::kHalf || c.dtype == at::kBFloat16;
    def << "\n  relative error of the single process vs the float64 definition:";
    const char* names[] = {"out", "dq", "dk", "dv"};
    for (int i = 0; i < 4; ++i) {
      // (low precision: the project's rule, as the tests apply it; the floor serves rows whose
      // exact gradient vanishes, where the naive maths can round to exactly zero)
      const double limit = low ? 2.0 * e.naive[i] + 1e-4 : tolerance(c.dtype);
      def << (i ? ", " : " ") << names[i] << " " << e.got[i] << " (limit " << limit << ")";
      def_ok = def_ok && e.got[i] <= limit;
    }
  } else {
    def << "\n  float64 definition: not compared (--batch x --heads x --seq-len^2 = "
        << (ref_elements < 0 ? std::string("more than 2^62") : std::to_string(ref_elements))
        << " > 2^26)";
  }

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
  s << def.str();
  const bool ok = e_out <= tol && e_dq <= tol && e_dk <= tol && e_dv <= tol && def_ok;
  s << "\n  " << (ok ? "PASS" : "FAIL");
  log_info(s.str());
  return ok ? 0 : 1;
}

}  // namespace longnet
