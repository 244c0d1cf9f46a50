// The brute-force definition of dilated attention (docs/design.md section 2), for the tests and
// `longnet check attention`: a dense (N x N) multiplicity mask C[j, p, t] = number of branches
// that give key t to query p in head j, then softmax(c * q k^T + log C) v in float64. Rows with
// no key give 0.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace longnet::reference {

// C: (H, N, N) float64 counts.
inline at::Tensor reference_multiplicity(int64_t N, int64_t H, const std::vector<int64_t>& w_list,
                                         const std::vector<int64_t>& r_list, bool causal) {
  auto C = at::zeros({H, N, N}, at::kDouble);
  auto acc = C.accessor<double, 3>();
  for (size_t i = 0; i < w_list.size(); ++i) {
    const int64_t w = std::min(w_list[i], N), r = r_list[i];
    for (int64_t j = 0; j < H; ++j) {
      const int64_t s = j % r;
      for (int64_t p = 0; p < N; ++p) {
        const int64_t m0 = p / w * w;
        if ((p - m0) % r != s) continue;
        for (int64_t t = m0; t < std::min(m0 + w, N); ++t)
          if ((t - m0) % r == s && (!causal || t <= p)) acc[j][p][t] += 1.0;
      }
    }
  }
  return C;
}

// q, k, v: (B, N, H, D) float64 (may require grad). Returns (B, N, H, D), differentiable.
inline at::Tensor reference_dilated_attention(const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& v,
                                              const std::vector<int64_t>& w_list,
                                              const std::vector<int64_t>& r_list, bool causal,
                                              double scale) {
  const int64_t N = q.size(1), H = q.size(2);
  auto C = reference_multiplicity(N, H, w_list, r_list, causal).to(q.device());
  auto qt = q.permute({0, 2, 1, 3}), kt = k.permute({0, 2, 1, 3}), vt = v.permute({0, 2, 1, 3});
  // Everything in q's dtype, so that a low-precision q gives the naive low-precision maths.
  auto logits = at::matmul(qt, kt.transpose(-2, -1)) * scale + C.log().to(q.scalar_type());
  // Rows no branch selects: finite placeholder logits, then zero weights.
  auto empty_row = (C.sum(-1, true) == 0);  // (H, N, 1)
  logits = at::where(empty_row, at::zeros_like(logits), logits);
  auto p = at::softmax(logits, -1) * (1.0 - empty_row.to(q.scalar_type()));
  return at::matmul(p, vt).permute({0, 2, 1, 3});
}

// ||a - b|| / ||b|| in float64.
inline double rel_error(const at::Tensor& a, const at::Tensor& b) {
  auto bd = b.to(at::kDouble).cpu();
  auto diff = (a.to(at::kDouble).cpu() - bd).norm().item<double>();
  auto den = bd.norm().item<double>();
  return den == 0 ? diff : diff / den;
}

}  // namespace longnet::reference
