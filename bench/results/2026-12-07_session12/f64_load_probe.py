"""python.ops' sporadic CPU float64 error (2.44e-10 against 1e-10, only under load): in a
process that may meet it, the first case of tests/test_ops.py's check, forward only, several
times; whenever the op and the test's reference differ by more than 1e-12, which of the two is
off (each against a BLAS-free elementwise reference) and where (the worst element).
  OMP_NUM_THREADS=2 python3 bench/results/2026-12-07_session12/f64_load_probe.py build/liblongnet_ops.so N
"""
import sys

import torch

sys.path.insert(0, "tests")
sys.path.insert(0, "bench/results/2026-12-06_session11")
from ops_f64_probe import failing_case, rel, slow_reference  # noqa: E402

torch.ops.load_library(sys.argv[1])


for it in range(int(sys.argv[2])):
    q, k, v, w, r, causal, scale, out, ref = failing_case()
    e = rel(out, ref)
    if e <= 1e-12:
        print(f"{it}: ok {e:.3g}", flush=True)
        continue
    slow = slow_reference(q, k, v, w, r, causal, scale)
    worst = (out - ref).abs().flatten().argmax().item()
    idx = torch.unravel_index(torch.tensor(worst), out.shape)
    rows = ((out - slow).abs().amax(-1) > 1e-12).nonzero().tolist()
    print(f"{it}: op vs ref {e:.3g}, op vs slow {rel(out, slow):.3g}, ref vs slow "
          f"{rel(ref, slow):.3g}; worst (b, n, h, d) {[int(i) for i in idx]}; rows of the op "
          f"off by > 1e-12 (b, n, h): {rows[:20]} ({len(rows)})", flush=True)
    ref_rows = ((ref - slow).abs().amax(-1) > 1e-12).nonzero().tolist()
    print(f"   rows of the reference off by > 1e-12: {ref_rows[:20]} ({len(ref_rows)})", flush=True)
